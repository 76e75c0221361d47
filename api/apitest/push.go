package apitest

import (
	"context"
	"fmt"

	"github.com/hushnet/hush/node"
)

// PushCode is the code the double's "verification push" carries.
const PushCode = "123456"

// RegisterPush records a registration; VerifyPush accepts PushCode once.
func (b *Backend) RegisterPush(_ context.Context, bridge, provider, token string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch provider {
	case "apns", "fcm", "webpush":
	default:
		return fmt.Errorf("%w: provider %q", node.ErrBadPush, provider)
	}
	b.push = node.PushStatus{Bridge: bridge, Provider: provider, State: "verifying"}
	return nil
}

// VerifyPush turns push on when given PushCode after a registration.
func (b *Backend) VerifyPush(_ context.Context, code string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.push.State != "verifying" || code != PushCode {
		return fmt.Errorf("%w: wrong or used code", node.ErrBadPush)
	}
	b.push.State, b.push.Relays = "on", 1
	return nil
}

// UnregisterPush turns push off.
func (b *Backend) UnregisterPush(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.push = node.PushStatus{State: "off"}
	return nil
}

// PushStatus returns the double's push state.
func (b *Backend) PushStatus() node.PushStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.push.State == "" {
		return node.PushStatus{State: "off"}
	}
	return b.push
}
