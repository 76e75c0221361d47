package node

// Subscribe returns a channel of events after seq (0: only new ones) and a
// cancel function. A subscriber that falls too far behind is dropped: its
// channel is closed (node/events).
func (n *Node) Subscribe(after uint64) (<-chan Event, func()) { return n.events.Subscribe(after) }

// publishLocked publishes events; it releases the WaitState callers of
// their messages. It runs under n.mu so that a WaitState check and its
// registration are not split by an event.
func (n *Node) publishLocked(evs []Event) {
	for _, ev := range evs {
		n.events.Publish(ev)
	}
}
