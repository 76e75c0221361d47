// Command echobot answers every 1:1 message with its own text, through
// the daemon's Unix socket with the api package's Client (docs/API.md,
// "Write a bot"). Run it as the daemon's user:
//
//	go run ./docs/examples/echobot --home ~/.local/share/hush
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

func main() {
	home := flag.String("home", os.Getenv("HUSH_HOME"), "the daemon's home directory")
	after := flag.Uint64("after", 0, "resume after this event seq (0: new events only)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c := api.NewClient(filepath.Join(*home, api.SocketFile))
	sub, err := c.Subscribe(ctx, *after)
	if err != nil {
		log.Fatal(err)
	}
	for ev := range sub.Events {
		m := ev.Message
		if ev.Type != apitypes.EventMessage || m == nil || m.Direction != "in" || m.Group != "" || m.Text == "" {
			continue
		}
		// The txnId makes a replayed event (after a restart) no second echo.
		p := apitypes.SendParams{To: m.Contact, Text: m.Text, TxnID: "echo-" + m.ID}
		if err := c.Call(ctx, "send", p, nil); err != nil {
			log.Printf("echo to %s: %v", m.Contact, err)
		}
	}
	if ctx.Err() == nil {
		log.Fatal(sub.Err())
	}
}
