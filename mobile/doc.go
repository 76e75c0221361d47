// Package mobile is hush's gomobile facade: a phone app embeds the node
// through a handful of package-level functions that gobind can bind for
// Java (Android) and Objective-C/Swift (iOS).
//
//   - [Start] opens the store from a JSON config and starts the node;
//     events reach the app as JSON through [Callback].
//   - [Call] runs any method of the local API (docs/API.md) with JSON
//     params and returns its JSON result: the same method table as the
//     daemon's Unix socket and HTTP listener (api.Handler.Call), so there
//     is no second API to keep in step.
//   - [Drain] is what the app does on a push wake-up: connect, take what
//     the relay mailboxes hold, send what is queued, deliver the events,
//     then stop the network again.
//   - [Close] stops everything.
//
// One node runs per process. Only types gobind binds cross the boundary
// (string, bool, int, error, a callback interface), and every exported
// function turns a panic into an error instead of ending the app.
// Resource limits for phones are in limits_mobile.go (android, ios).
//
// docs/MOBILE.md says how an Android and an iOS app use it.
package mobile
