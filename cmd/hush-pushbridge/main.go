// Command hush-pushbridge runs a hush push bridge: it registers devices'
// push tokens, hands them sealed wake handles, and turns relays' wake
// calls into content-free pushes through APNs, FCM and WebPush
// (docs/PUSH.md).
//
//	hush-pushbridge --config FILE
//	hush-pushbridge --new-relay-token
//
// On start it prints its listen address (host:port) on one line, then
// serves until SIGINT or SIGTERM. --new-relay-token prints a fresh relay
// bearer token and the token_sha256 to put in the bridge's config.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/hushnet/hush/pushbridge"
	"github.com/hushnet/hush/pushbridge/apns"
	"github.com/hushnet/hush/pushbridge/fcm"
	"github.com/hushnet/hush/pushbridge/provider"
	"github.com/hushnet/hush/pushbridge/webpush"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hush-pushbridge:", err)
		os.Exit(1)
	}
}

// run runs the bridge until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hush-pushbridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "JSON config `file` (fields and defaults: docs/PUSH.md)")
	newToken := fs.Bool("new-relay-token", false, "print a new relay token and its token_sha256, then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *newToken {
		tok := rand.Text() + rand.Text()
		sum := sha256.Sum256([]byte(tok))
		fmt.Fprintf(stdout, "token:        %s\ntoken_sha256: %s\n", tok, hex.EncodeToString(sum[:]))
		return nil
	}

	var cfg pushbridge.Config
	if *configPath != "" {
		var err error
		if cfg, err = pushbridge.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = defaultDataDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = pushbridge.DefaultListen
	}
	var level slog.Level
	if cfg.LogLevel != "" {
		if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
			return fmt.Errorf("config: log_level: %v", err)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log

	senders, err := newSenders(cfg)
	defer closeSenders(senders)
	if err != nil {
		return err
	}
	if len(senders) == 0 {
		log.Warn("no push service configured: every registration is refused")
	}
	b, err := pushbridge.Open(cfg, senders)
	if err != nil {
		return err
	}
	defer b.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ln.Addr().String())
	err = b.Run(ctx, ln)
	log.Info("bye")
	return err
}

// newSenders builds a sender for every service the config enables.
func newSenders(cfg pushbridge.Config) (map[provider.Kind]provider.Sender, error) {
	senders := make(map[provider.Kind]provider.Sender)
	if c := cfg.APNs; c != nil {
		s, err := apns.New(apns.Config{Endpoint: c.Endpoint, KeyFile: c.KeyFile, KeyID: c.KeyID,
			TeamID: c.TeamID, Topic: c.Topic})
		if err != nil {
			return senders, fmt.Errorf("config: apns: %w", err)
		}
		senders[provider.APNs] = s
	}
	if c := cfg.FCM; c != nil {
		s, err := fcm.New(fcm.Config{CredentialsFile: c.CredentialsFile, Endpoint: c.Endpoint})
		if err != nil {
			return senders, fmt.Errorf("config: fcm: %w", err)
		}
		senders[provider.FCM] = s
	}
	if c := cfg.WebPush; c != nil {
		s, err := webpush.New(webpush.Config{VAPIDPrivateKey: c.VAPIDPrivateKey, VAPIDPublicKey: c.VAPIDPublicKey,
			Subscriber: c.Subscriber, AllowPrivate: c.AllowPrivate})
		if err != nil {
			return senders, fmt.Errorf("config: webpush: %w", err)
		}
		senders[provider.WebPush] = s
	}
	return senders, nil
}

func closeSenders(senders map[provider.Kind]provider.Sender) {
	for _, s := range senders {
		if c, ok := s.(io.Closer); ok {
			c.Close()
		}
	}
}

func defaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "hush-pushbridge")
	}
	return "hush-pushbridge-data"
}
