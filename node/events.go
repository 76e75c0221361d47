package node

// Subscribe returns a channel of the events after seq (0: only new ones)
// and a cancel function: the stored events after seq, then new ones, in
// order, each once (node/events, eventlog.go).
func (n *Node) Subscribe(after uint64) (<-chan Event, func()) { return n.events.Subscribe(after) }

// publishLocked publishes events that no change carries: they are logged
// in a commit of their own, finished in the background, and published
// after it like any change's.
func (n *Node) publishLocked(evs []Event) {
	t := n.newTxnLocked()
	t.events = evs
	n.finishInBackgroundLocked(t)
}
