// Package pushbridge is hush's push bridge: it turns a relay's "a sealed
// envelope waits for this device" into one content-free wake-up through
// APNs, FCM or WebPush/UnifiedPush, without the relay learning the
// device's push token and without the push service learning anything but
// "wake up".
//
// A device registers its push token ([Bridge.Register]); the bridge sends
// a verification push carrying a one-time code; the device proves receipt
// ([Bridge.Verify]) and gets a wake handle: its provider and token sealed
// with HPKE to the bridge's own key, so only this bridge can open it. The
// device gives the handle to its relays, and a relay calls
// [Bridge.Wake] with it when a deposit arrives and nobody is listening.
//
// Every wake-up carries the same bytes ([WakePayload]) and the same
// collapse ID. The bridge coalesces repeated wakes for one handle, rate
// limits per handle and globally, retries a busy service after its
// Retry-After without ever duplicating a delivered push, and tombstones a
// handle whose token the service reports dead, so it is rejected forever.
//
// The bridge talks to the push services only through [provider.Sender];
// cmd/hush-pushbridge builds the senders from the config file. Its HTTP
// API ([Bridge.Handler]) and config are documented in docs/PUSH.md.
package pushbridge
