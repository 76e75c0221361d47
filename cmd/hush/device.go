package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/skip2/go-qrcode"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

const deviceSynopsis = "device link [--json] [--no-wait] | join CODE [--name NAME] [--history-days N] (--passphrase-file F | --no-passphrase) |\n" +
	"       list [--json] | revoke ID"

// linkGrace is how long `device link` waits past the code's expiry for
// the link: a handshake that used the code just before it expired still
// completes (the node allows 30 seconds for one). Tests shorten it.
var linkGrace = 30 * time.Second

// runDevice is `hush device`: the account's devices
// (docs/protocol/sync.md). link, list and revoke talk to the daemon;
// join runs without one, on a new home.
func runDevice(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("usage: hush %s", deviceSynopsis)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "link":
		return deviceLink(ctx, e, rest)
	case "join":
		return deviceJoin(ctx, e, rest)
	case "list", "ls":
		return deviceList(ctx, e, rest)
	case "revoke":
		return deviceRevoke(ctx, e, rest)
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: hush %s\n", deviceSynopsis)
		return nil
	}
	return usagef("unknown device command %q; usage: hush %s", sub, deviceSynopsis)
}

// deviceLink is `device link`: it asks the daemon for a link code,
// prints it (text, QR, expiry, the command for the new device) and,
// unless --json or --no-wait, follows the link and the history transfer
// to their end.
func deviceLink(ctx context.Context, e *env, args []string) error {
	const synopsis = "device link [--json] [--no-wait]"
	fs := newFlags(e, "device link")
	asJSON := fs.Bool("json", false, `print the API's JSON ({"code","expires"}) and do not wait`)
	noWait := fs.Bool("no-wait", false, "print the code and exit; the daemon links the device anyway")
	if _, err := parseArgs(e, fs, args, 0, 0, synopsis); err != nil {
		return err
	}
	wait := !*asJSON && !*noWait
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()

	// Subscribe before asking for the code, so that no event of this
	// link can fall between the two.
	var sub *api.Subscription
	if wait {
		var err error
		if sub, err = api.NewClient(socketPath(e.home)).Subscribe(ctx, 0); err != nil {
			return clientError(e, err)
		}
		defer sub.Close()
	}
	offer, shown, err := callDecoded[apitypes.LinkOffer](ctx, e, "linkDevice", nil, *asJSON, "a malformed link offer")
	if err != nil || shown {
		return err
	}
	// The code is upper-case base32 behind "HUSH-LINK:": QR alphanumeric mode.
	qr, err := qrcode.New(strings.ToUpper(offer.Code), qrcode.Low)
	if err != nil {
		return fmt.Errorf("making QR code: %w", err)
	}
	fmt.Fprintln(e.stdout, offer.Code)
	fmt.Fprint(e.stdout, qr.ToSmallString(false))
	fmt.Fprintf(e.stdout, "This code links a new device to your account. It works once, until %s (%s from now).\n",
		offer.Expires.Local().Format("15:04:05"), time.Until(offer.Expires).Round(time.Second))
	fmt.Fprintln(e.stdout, "Anyone who has it can join your account before you do: show it to no one else.")
	fmt.Fprintln(e.stdout, "On the new device, run:")
	fmt.Fprintf(e.stdout, "  hush --home NEWDIR device join %s --name NAME (--passphrase-file F | --no-passphrase)\n", offer.Code)
	if !wait {
		return nil
	}
	fmt.Fprintln(e.stdout, "Waiting for the new device… (Ctrl-C stops waiting; the code stays valid)")
	return followLink(ctx, e, sub, offer.Expires.Add(linkGrace))
}

// followLink follows the device events of one link until its history
// transfer completes (nil) or fails, or, before the link, until
// deadline: the code expired unused.
func followLink(ctx context.Context, e *env, sub *api.Subscription, deadline time.Time) error {
	expired := time.NewTimer(time.Until(deadline))
	defer expired.Stop()
	var (
		linked string // the new device's ID, once linked
		name   string // and its name
		bar    historyBar
	)
	bar.w = e.stderr
	defer bar.stop()
	for {
		select {
		case <-ctx.Done():
			bar.stop()
			if linked == "" {
				return exitError{code: 1, msg: "stopped waiting; the code stays valid until it expires"}
			}
			return exitError{code: 1, msg: "stopped waiting; the daemon goes on with the history transfer"}
		case <-expired.C:
			if linked == "" {
				return exitError{code: 1, msg: "code expired unused"}
			}
		case ev, ok := <-sub.Events:
			if !ok {
				bar.stop()
				msg := "lost the daemon's event stream"
				if err := sub.Err(); err != nil {
					msg += ": " + strings.TrimPrefix(err.Error(), "api: ")
				}
				return exitError{code: 1, msg: msg}
			}
			d := ev.Device
			if ev.Type != apitypes.EventDevice || d == nil {
				continue
			}
			if linked != "" && d.ID != "" && d.ID != linked {
				continue // another device's news
			}
			switch d.Phase {
			case "linked":
				if linked == "" {
					linked, name = d.ID, d.Name
					expired.Stop()
					fmt.Fprintf(e.stdout, "Linked %s (device %s). Sending history…\n", deviceName(d.Name), d.ID)
				}
			case "transfer":
				bar.update(d.Done, d.Total)
			case "complete":
				bar.finish(d.Done, d.Total)
				if name == "" {
					name = d.Name
				}
				fmt.Fprintf(e.stdout, "History transferred (%d items): start `hush daemon` on %s.\n", d.Done, deviceName(name))
				return nil
			case "failed":
				bar.stop()
				msg := "linking failed"
				if linked != "" {
					msg = "history transfer failed"
				}
				if d.Error != "" {
					msg += ": " + d.Error
				}
				return exitError{code: 1, msg: msg}
			}
		}
	}
}

// deviceName is a device's name for a sentence.
func deviceName(name string) string {
	if name == "" {
		return "the new device"
	}
	return fmt.Sprintf("%q", name)
}

// historyBar is the progress bar of a history transfer on w (stderr).
// The total grows while the other device's store grows. The zero value
// (with w set) shows nothing until the first update.
type historyBar struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

// update shows done of total items.
func (h *historyBar) update(done, total uint64) {
	if total < done {
		total = done
	}
	if total == 0 {
		return
	}
	if h.bar == nil {
		h.bar = progressbar.NewOptions64(int64(total),
			progressbar.OptionSetWriter(h.w),
			progressbar.OptionSetDescription("history"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("items"),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
		)
	}
	if int64(total) != h.bar.GetMax64() {
		h.bar.ChangeMax64(int64(total))
	}
	h.bar.Set64(int64(done))
}

// finish fills the bar and ends its line.
func (h *historyBar) finish(done, total uint64) {
	h.update(done, total)
	if h.bar != nil {
		h.bar.Finish()
		fmt.Fprintln(h.w)
		h.bar = nil
	}
}

// stop ends the bar's line where it is, if one is showing.
func (h *historyBar) stop() {
	if h.bar != nil {
		h.bar.Exit()
		fmt.Fprintln(h.w)
		h.bar = nil
	}
}

// deviceJoin is `device join CODE`: it makes home a new device of the
// account whose device printed CODE, transfers the history with a
// progress bar, and exits. It needs no daemon (there is none: the home
// is new); `hush daemon` then runs the device.
func deviceJoin(ctx context.Context, e *env, args []string) error {
	const synopsis = "device join CODE [--name NAME] [--history-days N] (--passphrase-file F | --no-passphrase); without CODE, resume an interrupted join"
	fs := newFlags(e, "device join")
	name := fs.String("name", "", "this device's name, as the account's other devices list it (default: this machine's host name)")
	days := fs.Int("history-days", 0, "transfer only the messages of the last N days (0: all)")
	passphrase := newPassphraseFlags(e, fs)
	pos, err := parseArgs(e, fs, args, 0, 1, synopsis)
	if err != nil {
		return err
	}
	code := ""
	if len(pos) == 1 {
		code = pos[0]
	} else if _, err := os.Stat(filepath.Join(e.home, "store")); err != nil {
		return usagef("device join needs the code `hush device link` printed on your other device (only an interrupted join resumes without one)")
	}
	if *days < 0 || int64(*days) > 1<<32-1 {
		return usagef("--history-days must be 0 (all) or a number of days")
	}
	pass, err := passphrase(synopsis)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", e.home, err)
	}
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()

	var (
		mu   sync.Mutex // the node may report from its own goroutine
		bar  = historyBar{w: e.stderr}
		last apitypes.HistoryProgress
	)
	progress := func(p apitypes.HistoryProgress) {
		mu.Lock()
		defer mu.Unlock()
		last = p
		if p.Complete {
			bar.finish(p.Done, p.Total)
		} else {
			bar.update(p.Done, p.Total)
		}
	}
	fmt.Fprintln(e.stderr, "Linking…")
	self, err := joinDevice(ctx, e.home, joinRequest{
		Code: code, Name: *name, HistoryDays: uint32(*days), Passphrase: pass, Progress: progress,
	})
	mu.Lock()
	defer mu.Unlock()
	bar.stop()
	if err != nil {
		if self != nil && self.History != nil {
			last = *self.History
		}
		if last.Total > 0 && !last.Complete {
			// The link was made: the home is a device of the account,
			// with part of the history.
			fmt.Fprintf(e.stderr, "hush: this home is a linked device; history transfer incomplete: %d of %d items; "+
				"`hush --home %s daemon` resumes it when the other device is reachable\n", last.Done, last.Total, e.home)
		}
		if ctx.Err() != nil {
			return exitError{code: 1, msg: "device join: interrupted"}
		}
		return joinError(e.home, err)
	}
	fmt.Fprintf(e.stdout, "Joined %s's account in %s.\n", self.Name, e.home)
	fmt.Fprintf(e.stdout, "This device's ID: %s\n", self.Device)
	if self.Fingerprint != "" {
		fmt.Fprintf(e.stdout, "Account fingerprint: %s (the same as on your other devices)\n", self.Fingerprint)
	}
	printStoreProtection(e, pass)
	warnHistory(e, self.History)
	fmt.Fprintf(e.stdout, "Start it with: hush --home %s daemon\n", e.home)
	return nil
}

// deviceList is `device list`: the account's devices.
func deviceList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "device list")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if _, err := parseArgs(e, fs, args, 0, 0, "device list [--json]"); err != nil {
		return err
	}
	ds, shown, err := callDecoded[[]apitypes.Device](ctx, e, "listDevices", nil, *asJSON, "a malformed device list")
	if err != nil || shown {
		return err
	}
	fmt.Fprintf(e.stdout, "%-16s  %-20s  %s\n", "ID", "NAME", "ADDED")
	for _, d := range ds {
		id := d.ID
		if len(id) > 16 {
			id = id[:16]
		}
		name := d.Name
		if name == "" {
			name = "(unnamed)"
		}
		added := ""
		if !d.Added.IsZero() {
			added = d.Added.Local().Format("2006-01-02")
		}
		line := fmt.Sprintf("%-16s  %-20s  %-10s", id, name, added)
		if d.This {
			line += "  this device"
		}
		fmt.Fprintln(e.stdout, strings.TrimRight(line, " "))
	}
	return nil
}

// deviceRevoke is `device revoke ID`: the device leaves the account.
func deviceRevoke(ctx context.Context, e *env, args []string) error {
	pos, err := parseArgs(e, newFlags(e, "device revoke"), args, 1, 1, "device revoke ID")
	if err != nil {
		return err
	}
	if err := call(ctx, e, "revokeDevice", apitypes.DeviceIDParams{ID: pos[0]}, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked device %s: your other devices and your contacts stop trusting it\n", pos[0])
	return nil
}
