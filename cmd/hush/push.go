package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hushnet/hush/api/apitypes"
)

const pushSynopsis = "push register --bridge URL --provider apns|fcm|webpush --token TOKEN|@FILE | verify CODE | status [--json] | unregister"

// runPush is `hush push`: register this device with a push bridge so
// relays can wake it while its app sleeps (docs/PUSH.md).
func runPush(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("usage: hush %s", pushSynopsis)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "register":
		fs := newFlags(e, "push register")
		bridge := fs.String("bridge", "", "the push bridge's URL")
		prov := fs.String("provider", "", "apns, fcm or webpush")
		token := fs.String("token", "", "the device token; for webpush the subscription JSON; @FILE reads it from FILE")
		if _, err := parseArgs(e, fs, rest, 0, 0, "push register --bridge URL --provider apns|fcm|webpush --token TOKEN|@FILE"); err != nil {
			return err
		}
		if *bridge == "" || *prov == "" || *token == "" {
			return usagef("push register needs --bridge, --provider and --token")
		}
		tok := *token
		if name, ok := strings.CutPrefix(tok, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return fmt.Errorf("reading the token: %w", err)
			}
			tok = strings.TrimSpace(string(b))
		}
		if err := call(ctx, e, "registerPush", apitypes.RegisterPushParams{Bridge: *bridge, Provider: *prov, Token: tok}, nil); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "the bridge sent a verification push; give its code with: hush push verify CODE")
		return nil
	case "verify":
		pos, err := parseArgs(e, newFlags(e, "push verify"), rest, 1, 1, "push verify CODE")
		if err != nil {
			return err
		}
		if err := call(ctx, e, "verifyPush", apitypes.VerifyPushParams{Code: pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "push is on: relays will wake this device when a message waits")
		return nil
	case "status":
		fs := newFlags(e, "push status")
		asJSON := fs.Bool("json", false, "print the API's JSON")
		if _, err := parseArgs(e, fs, rest, 0, 0, "push status [--json]"); err != nil {
			return err
		}
		st, shown, err := callDecoded[apitypes.PushStatus](ctx, e, "pushStatus", nil, *asJSON, "a malformed status")
		if err != nil || shown {
			return err
		}
		switch st.State {
		case "off":
			fmt.Fprintln(e.stdout, "push: off")
		case "verifying":
			fmt.Fprintf(e.stdout, "push: waiting for the verification code (%s via %s)\n", st.Provider, st.Bridge)
		default:
			fmt.Fprintf(e.stdout, "push: on (%s via %s); %d relay(s) hold the wake handle, %d have no push bridge\n", st.Provider, st.Bridge, st.Relays, st.Unsupported)
		}
		return nil
	case "unregister":
		if _, err := parseArgs(e, newFlags(e, "push unregister"), rest, 0, 0, "push unregister"); err != nil {
			return err
		}
		if err := call(ctx, e, "unregisterPush", nil, nil); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "push is off")
		return nil
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: hush %s\n", pushSynopsis)
		return nil
	}
	return usagef("unknown push command %q; usage: hush %s", sub, pushSynopsis)
}
