package api

import (
	"context"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// The push methods: a phone app (or `hush push`) registers its push
// token with the app's push bridge, then hands back the code the
// verification push carried; the node attaches the wake handle to its
// mailboxes (docs/PUSH.md).

func mRegisterPush(ctx context.Context, b Backend, p apitypes.RegisterPushParams) (apitypes.OK, error) {
	for _, f := range []struct{ name, v string }{{"bridge", p.Bridge}, {"provider", p.Provider}, {"token", p.Token}} {
		if err := required(f.name, f.v); err != nil {
			return apitypes.OK{}, err
		}
	}
	return ok(b.RegisterPush(ctx, p.Bridge, p.Provider, p.Token))
}

func mVerifyPush(ctx context.Context, b Backend, p apitypes.VerifyPushParams) (apitypes.OK, error) {
	if err := required("code", p.Code); err != nil {
		return apitypes.OK{}, err
	}
	return ok(b.VerifyPush(ctx, p.Code))
}

func mUnregisterPush(ctx context.Context, b Backend, _ struct{}) (apitypes.OK, error) {
	return ok(b.UnregisterPush(ctx))
}

func mPushStatus(_ context.Context, b Backend, _ struct{}) (node.PushStatus, error) {
	return b.PushStatus(), nil
}
