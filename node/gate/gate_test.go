package gate

import "testing"

func isOpen[K comparable](g *Gate[K]) bool {
	select {
	case <-g.Opened():
		return true
	default:
		return false
	}
}

// The gate opens when the last key added before Seal is done, not
// before; Done before Seal counts; Open overrides.
func TestGateOpensWhenAllDone(t *testing.T) {
	g := New[string]()
	g.Add("a")
	g.Add("b")
	g.Done("a")
	if isOpen(g) {
		t.Fatal("open before Seal")
	}
	g.Seal()
	if isOpen(g) {
		t.Fatal("open with b pending")
	}
	g.Add("c")  // after Seal: ignored
	g.Done("x") // not pending: ignored
	g.Done("b")
	if !isOpen(g) {
		t.Fatal("closed with nothing pending")
	}
	g.Done("b") // again: no panic on a closed channel
	g.Open()

	empty := New[int]()
	empty.Seal()
	if !isOpen(empty) {
		t.Fatal("an empty sealed gate is closed")
	}

	forced := New[int]()
	forced.Add(1)
	forced.Open()
	if !isOpen(forced) {
		t.Fatal("Open did not open")
	}
}
