//go:build race

package node

// raceEnabled: the race detector slows crypto-heavy tests by tens of
// times; such tests scale down under it (and `make test` also runs them
// at full size without it).
const raceEnabled = true
