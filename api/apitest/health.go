package apitest

import "github.com/hushnet/hush/node"

// SetHealth makes Health answer h; an empty Status answers ok (with
// h's History, if set).
func (b *Backend) SetHealth(h node.Health) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.health = h
}

// Health answers what SetHealth set, or ok.
func (b *Backend) Health() node.Health {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.health
	if h.Status == "" {
		h.Status = "ok"
	}
	return h
}
