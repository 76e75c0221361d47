package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

// Sending a file with its progress (`file send`, `group file send`):
// the daemon's file events, shown as bars on stderr while it seals the
// file and, when a relay takes it too, while it uploads it; with --wait,
// while the recipient fetches it from here.

// showBars reports whether progress bars go to stderr: when it is a
// terminal, unless HUSH_PROGRESS=0; HUSH_PROGRESS=1 shows them anywhere.
func (e *env) showBars() bool {
	switch e.getenv("HUSH_PROGRESS") {
	case "0":
		return false
	case "1":
		return true
	}
	f, ok := e.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newTxnID is a client transaction ID for a request the user gave none:
// it names the request's seal events, and makes a retry of it safe.
func newTxnID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "cli-" + hex.EncodeToString(b)
}

// sendFileFollowing calls method (sendFile or sendGroupFile, whose
// params carry txnID) and follows the file's seal and upload on sub (a
// subscription made before the call): it returns the message once the
// file is sealed and, if it goes to a relay, once the relay has it. An
// upload that stops for now (the relay out of reach) is a warning, not a
// failure: the message is sent, and the daemon goes on uploading by
// itself. Bars show when bars is true. The serve events it reads (a
// recipient fetching already) go into served, the last by message.
func sendFileFollowing(ctx context.Context, e *env, sub *api.Subscription, method string, params any, txnID, name string, bars bool,
	served map[string]apitypes.FileProgress) (apitypes.Message, error) {
	type sent struct {
		m   apitypes.Message
		err error
	}
	results := make(chan sent, 1)
	go func() {
		var m apitypes.Message
		err := call(ctx, e, method, params, &m)
		results <- sent{m, err}
	}()

	seal := phaseBar{fileBar: fileBar{w: e.stderr, name: "sealing " + name}, on: bars}
	upload := phaseBar{fileBar: fileBar{w: e.stderr, name: "uploading " + name}, on: bars}
	defer seal.stop()
	defer upload.stop()
	var m *apitypes.Message                     // the message, once the call returned
	early := map[string]apitypes.FileProgress{} // the last upload event of each message before that
	events := sub.Events
	for {
		var p *apitypes.FileProgress
		select {
		case <-ctx.Done():
			if m == nil {
				return apitypes.Message{}, exitError{code: 1, msg: "stopped waiting; the daemon may still send the file (`hush file list` shows it)"}
			}
			return *m, exitError{code: 1, msg: fmt.Sprintf("stopped waiting for the upload; %s is sent, and the daemon goes on uploading it to the relay", m.ID)}
		case r := <-results:
			if r.err != nil {
				return apitypes.Message{}, r.err
			}
			results = nil
			m = &r.m
			if m.File != nil {
				seal.finish(m.File.Size)
			}
			if m.File == nil || m.File.Upload != apitypes.UploadPending {
				return *m, nil
			}
			if last, ok := early[m.ID]; ok {
				p = &last
			}
		case ev, ok := <-events:
			if !ok {
				events = nil
				if m == nil {
					continue // the call's answer is still to come
				}
				fmt.Fprintf(e.stderr, "warning: lost the daemon's events; %s is sent, and the daemon goes on uploading it\n", m.ID)
				return *m, nil
			}
			if ev.Type != apitypes.EventFile || ev.File == nil {
				continue
			}
			switch ev.File.Phase {
			case apitypes.PhaseSeal:
				if ev.File.TxnID == txnID && m == nil { // after the answer the bar is full
					seal.update(ev.File.Bytes, ev.File.Total)
				}
			case apitypes.PhaseServe:
				served[ev.File.ID] = *ev.File
			case apitypes.PhaseUpload:
				if m == nil {
					early[ev.File.ID] = *ev.File
				} else if ev.File.ID == m.ID {
					p = ev.File
				}
			}
		}
		if p == nil {
			continue
		}
		switch {
		case p.Done:
			upload.finish(p.Total)
			f := *m.File
			f.Upload = apitypes.UploadDone
			m.File = &f
			return *m, nil
		case p.Error != "":
			upload.stop()
			fmt.Fprintf(e.stderr, "warning: the upload of %s to the relay stopped: %s\n", m.ID, oneLine(p.Error))
			return *m, nil
		default:
			upload.update(p.Bytes, p.Total)
		}
	}
}

// phaseBar is a fileBar that shows only when on.
type phaseBar struct {
	fileBar
	on bool
}

func (b *phaseBar) update(bytes, total int64) {
	if b.on {
		b.fileBar.update(bytes, total)
	}
}

// finish fills the bar (showing it full if it had not shown yet) and
// ends its line.
func (b *phaseBar) finish(total int64) {
	if b.on {
		b.fileBar.update(total, total)
		b.fileBar.finish(total)
	}
}

// followServe shows, while waiting for m to reach state, how far the
// recipient's device has fetched the file from this one (the daemon's
// serve events, first the one already read if not nil), until stop is
// closed.
func followServe(e *env, sub *api.Subscription, first *apitypes.FileProgress, id, name string, stop <-chan struct{}) {
	bar := fileBar{w: e.stderr, name: "fetched " + name}
	defer bar.stop()
	if first != nil {
		bar.update(first.Bytes, first.Total)
	}
	for {
		select {
		case <-stop:
			return
		case ev, ok := <-sub.Events:
			if !ok {
				return
			}
			if p := ev.File; ev.Type == apitypes.EventFile && p != nil && p.Phase == apitypes.PhaseServe && p.ID == id {
				if p.Done {
					bar.finish(p.Total)
					continue
				}
				bar.update(p.Bytes, p.Total)
			}
		}
	}
}

// sendFileCommand is `file send` and `group file send` once their
// arguments are checked: the send with its progress, then the report
// (with wait, after waiting for that state).
func sendFileCommand(ctx context.Context, e *env, method string, params any, txnID, path string, wait apitypes.MessageState, timeout time.Duration, asJSON bool) error {
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	// Subscribe first, so that no event of this file falls before it.
	sub, err := api.NewClient(socketPath(e.home)).Subscribe(ctx, 0)
	if err != nil {
		return clientError(e, err)
	}
	defer sub.Close()
	bars := !asJSON && e.showBars()
	served := map[string]apitypes.FileProgress{}
	m, err := sendFileFollowing(ctx, e, sub, method, params, txnID, displayName(filepath.Base(path), ""), bars, served)
	if err != nil {
		return err
	}
	var first *apitypes.FileProgress
	if p, ok := served[m.ID]; ok {
		first = &p
	}
	return reportFileSent(ctx, e, sub, first, m, wait, timeout, bars, asJSON)
}

// reportFileSent is reportSent for a file: with wait and bars it also
// shows how far the recipient fetched the file from this device (serve
// events on sub, after first if not nil); with asJSON it prints the
// message as the API's JSON instead of its ID and state.
func reportFileSent(ctx context.Context, e *env, sub *api.Subscription, first *apitypes.FileProgress, m apitypes.Message, wait apitypes.MessageState,
	timeout time.Duration, bars, asJSON bool) error {
	if bars && wait != "" && m.File != nil {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			followServe(e, sub, first, m.ID, displayName(m.File.Name, m.ID), stop)
		}()
		defer func() {
			close(stop)
			<-done
		}()
	}
	if !asJSON {
		return reportSent(ctx, e, m, wait, timeout)
	}
	if wait != "" {
		ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
		defer cancel()
		ms := timeout.Milliseconds()
		if err := call(ctx, e, "waitMessage", apitypes.WaitMessageParams{ID: m.ID, State: wait, TimeoutMs: &ms}, &m); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := printJSON(e.stdout, raw); err != nil {
		return err
	}
	if m.State == apitypes.StateFailed {
		return exitError{code: 1, msg: "message failed: " + m.Error}
	}
	return nil
}
