package apitest

import "github.com/hushnet/hush/node"

// SetHealth makes Health answer h; the zero value answers ok.
func (b *Backend) SetHealth(h node.Health) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.health = h
}

// Health answers what SetHealth set, or ok.
func (b *Backend) Health() node.Health {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.health.Status == "" {
		return node.Health{Status: "ok"}
	}
	return b.health
}
