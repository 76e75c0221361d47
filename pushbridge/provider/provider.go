// Package provider is what the push bridge asks of a push service:
// deliver one content-free wake-up to one device token and say how it
// went. The senders (pushbridge/apns, pushbridge/fcm, pushbridge/webpush)
// implement Sender; the bridge (package pushbridge) decides when to call
// them, coalesces, rate-limits and retries. This package is a leaf: it
// imports only the standard library.
package provider

import (
	"context"
	"time"
)

// Kind names a push service.
type Kind string

// The push services a bridge can use.
const (
	APNs    Kind = "apns"
	FCM     Kind = "fcm"
	WebPush Kind = "webpush"
)

// Priority is how urgently the service should wake the device.
type Priority int

const (
	// Normal lets the service batch the push (APNs priority 5, FCM
	// "normal", WebPush Urgency "normal").
	Normal Priority = iota
	// High wakes the device now (APNs priority 10, FCM "high", WebPush
	// Urgency "high"): a message waits.
	High
)

// Push is one wake-up. It carries no sender, chat, mailbox, peer or
// message identifier: Payload is a constant (or a blob already sealed to
// the device and padded to a fixed size), CollapseID is fixed.
type Push struct {
	// Token is the device's address at the service: the APNs device
	// token (hex), the FCM registration token, or a WebPush subscription
	// as JSON ({"endpoint", "keys": {"p256dh", "auth"}}).
	Token    string
	Payload  []byte
	Priority Priority
	// TTL is how long the service keeps the push for an offline device;
	// 0 means deliver now or never.
	TTL time.Duration
	// CollapseID makes a newer push replace an undelivered older one.
	CollapseID string
}

// Outcome is what became of a push.
type Outcome int

const (
	// Delivered: the service accepted the push.
	Delivered Outcome = iota
	// Dead: the token is gone for good (APNs 410 Unregistered,
	// BadDeviceToken, DeviceTokenNotForTopic; FCM UNREGISTERED; WebPush
	// 404/410). The bridge deletes it and reports the handle rejected.
	Dead
	// Retry: the service is busy or failing (429, 5xx, a timeout); try
	// again after Result.RetryAfter. Nothing was delivered.
	Retry
	// Refused: the request itself was refused (400, 401, 403, a token the
	// service does not accept): the operator must look; retrying the
	// same request does not help.
	Refused
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Dead:
		return "dead"
	case Retry:
		return "retry"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// Result describes one attempt. Reason is the service's own reason code
// (for example "Unregistered" or "UNREGISTERED"), never a token.
type Result struct {
	Outcome    Outcome
	RetryAfter time.Duration // for Retry: the service's Retry-After, else a suggested back-off
	Status     int           // HTTP status, 0 when no response came
	Reason     string
}

// Sender delivers pushes through one service. Send must be safe for
// concurrent use and must respect ctx (a service that hangs ends in
// Retry when ctx is done).
type Sender interface {
	Kind() Kind
	Send(ctx context.Context, p Push) Result
	// CheckToken validates a token's syntax and size before it is
	// registered (a clear error; nothing is sent).
	CheckToken(token string) error
}
