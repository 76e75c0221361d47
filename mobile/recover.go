package mobile

import (
	"fmt"
	"runtime/debug"
)

// A panic that crosses gobind's boundary ends the app ("Exceptions and
// panics are not yet supported"), so every exported function recovers
// into an error, and the event delivery recovers around the callback.

// testHook, when set (tests only), runs at the start of every exported
// function with its name: a test makes it panic.
var testHook func(fn string)

func hook(fn string) {
	if testHook != nil {
		testHook(fn)
	}
}

// recoverError turns a panic in fn into *err. It must be deferred
// directly.
func recoverError(fn string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("mobile: %s panicked: %v\n%s", fn, r, debug.Stack())
	}
}

// deliver calls the app's OnEvent; a Go panic in it (a Go Callback, or a
// bug on this side) is dropped, not fatal.
func deliver(cb Callback, eventJSON string) {
	defer func() { _ = recover() }()
	cb.OnEvent(eventJSON)
}
