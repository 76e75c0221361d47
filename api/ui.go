package api

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/hushnet/hush/api/apitypes"
)

// UI is a web interface the HTTP listener serves beside the API (the
// webui package; docs/WEBUI.md). The listener checks the Host header
// before the UI sees a request. The UI answers every path outside
// /api/v1/ and mints the one-time login URLs of uiLogin.
type UI interface {
	http.Handler
	// NewLogin returns a fresh one-time login URL under base
	// ("http://127.0.0.1:PORT").
	NewLogin(base string) (apitypes.UILogin, error)
}

// uiHook is the UI and the base URL its logins are under, set once the
// HTTP listener is bound.
type uiHook struct {
	ui   UI
	base string
}

type handlerKey struct{}

// uiOf returns the UI the handler serving ctx's call has, or nil.
func uiOf(ctx context.Context) *uiHook {
	h, _ := ctx.Value(handlerKey{}).(*Handler)
	if h == nil {
		return nil
	}
	return h.ui.Load()
}

// mUILogin is uiLogin: a one-time URL for the web UI. It is a write: a
// read-only token must not turn itself into a full UI session.
func mUILogin(ctx context.Context, _ Backend, _ struct{}) (apitypes.UILogin, error) {
	u := uiOf(ctx)
	if u == nil {
		return apitypes.UILogin{}, &Error{Code: CodeUnavailable,
			Message: "the daemon serves no web UI (it needs the HTTP listener: hush daemon --api-addr 127.0.0.1:PORT)",
			Data:    &ErrorData{Reason: "no_ui"}}
	}
	return u.ui.NewLogin(u.base)
}

// setUI makes the handler's uiLogin answer with ui's logins under base.
func (h *Handler) setUI(ui UI, base string) { h.ui.Store(&uiHook{ui: ui, base: base}) }

// uiPointer is the handler's field for its UI.
type uiPointer = atomic.Pointer[uiHook]
