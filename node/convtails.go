package node

// The conversation list reads the tail of every conversation (its last
// message and unread count, convTailLocked). Read from the store, that is
// up to maxTailScan sealed records per conversation: with 200
// conversations of 50 unread messages each, about 0.4 s per list
// (BenchmarkConversationTails). tails keeps each tail read until a
// message of its conversation is written or deleted, so a list after a
// new message reads one conversation again, not all of them.
//
// A tail is forgotten twice for a change made in a txn: when the change
// is written into the batch, and after the commit (success or not),
// because a list running while the commit releases n.mu reads the store
// as it was before the commit and may have cached that.

// tailCache maps a conversation key to its tail. It is guarded by
// Node.mu, as the store reads that fill it are.
type tailCache map[string]convTail

// forget drops the tail of the conversation with key.
func (c tailCache) forget(key []byte) { delete(c, string(key)) }

// cachedTailLocked is convTailLocked through n.tails.
func (n *Node) cachedTailLocked(key []byte) (convTail, error) {
	if ct, ok := n.tails[string(key)]; ok {
		return ct, nil
	}
	ct, err := n.convTailLocked(key)
	if err != nil {
		return ct, err
	}
	n.tails[string(key)] = ct
	return ct, nil
}

// tailChangedLocked notes, in t, that a message of the conversation with
// key was written or deleted.
func (n *Node) tailChangedLocked(t *txn, key []byte) {
	n.tails.forget(key)
	t.convs = append(t.convs, string(key))
}
