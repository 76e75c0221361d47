// Package node is the composition root of a hush device: the libp2p host,
// the /hush/msg/1 protocol, the durable outbox and deduplicating inbox,
// contacts, sessions and events for the API and embedding apps.
package node
