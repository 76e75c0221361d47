package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

const fileSynopsis = "file send NAME PATH [--caption TEXT] [--wait delivered|read] [--timeout 30s] [--json] |\n" +
	"       get MESSAGE-ID [--out PATH] [--force] [--timeout D] | list NAME [--json] |\n" +
	"       auto NAME [off|default|SIZE] [--group] [--json]"

// runFile is `hush file`: attachments (docs/protocol/files.md). Every
// subcommand talks to the daemon; paths are made absolute here, since the
// daemon, which reads and writes the files, has a directory of its own.
func runFile(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("usage: hush %s", fileSynopsis)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "send":
		return fileSend(ctx, e, rest)
	case "get":
		return fileGet(ctx, e, rest)
	case "list", "ls":
		return fileList(ctx, e, rest)
	case "auto":
		return fileAuto(ctx, e, rest)
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: hush %s\n", fileSynopsis)
		return nil
	}
	return usagef("unknown file command %q; usage: hush %s", sub, fileSynopsis)
}

// fileSend is `file send NAME PATH`: it checks PATH here (a missing file
// or a directory is this side's mistake to report), sends it by its
// absolute path, follows the daemon's seal and relay upload (bars on a
// terminal), and prints the message ID and state, as `send` does.
func fileSend(ctx context.Context, e *env, args []string) error {
	const synopsis = "file send NAME PATH [--caption TEXT] [--wait delivered|read] [--timeout 30s] [--json]"
	flags := newFlags(e, "file send")
	caption := flags.String("caption", "", "text shown with the file")
	wait := flags.String("wait", "", "wait until the message is sent, delivered or read")
	timeout := flags.Duration("timeout", 30*time.Second, "how long --wait waits")
	txn := flags.String("txn-id", "", "client transaction ID: a retry with the same ID is not sent twice")
	asJSON := flags.Bool("json", false, "print the message as the API's JSON (and no progress bars)")
	pos, err := parseArgs(e, flags, args, 2, 2, synopsis)
	if err != nil {
		return err
	}
	state, err := parseWait(*wait)
	if err != nil {
		return err
	}
	if *timeout <= 0 || *timeout > api.MaxWaitTimeout {
		return usagef("--timeout must be between 1ms and %v", api.MaxWaitTimeout)
	}
	p, err := sendablePath(pos[1])
	if err != nil {
		return err
	}
	txnID := cmp.Or(*txn, newTxnID())
	return sendFileCommand(ctx, e, "sendFile", apitypes.SendFileRequest{To: pos[0], Path: p, Caption: *caption, TxnID: txnID},
		txnID, p, state, *timeout, *asJSON)
}

// sendablePath makes p absolute and checks that it is a regular file.
func sendablePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", exitError{code: 1, msg: "no such file: " + p}
	case err != nil:
		return "", exitError{code: 1, msg: "cannot read " + p + ": " + pathErr(err)}
	case fi.IsDir():
		return "", exitError{code: 1, msg: p + " is a directory; send a file (an archive of it, say)"}
	case !fi.Mode().IsRegular():
		return "", exitError{code: 1, msg: p + " is not a regular file"}
	}
	return abs, nil
}

// pathErr is err without the operation and path a *fs.PathError adds.
func pathErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// fileGet is `file get MESSAGE-ID`: it starts the download, follows its
// progress on stderr while it waits, then has the daemon write the file
// (by default the file's name in the current directory, never over an
// existing file without --force) and prints where it went.
func fileGet(ctx context.Context, e *env, args []string) error {
	const synopsis = "file get MESSAGE-ID [--out PATH] [--force] [--timeout D]"
	flags := newFlags(e, "file get")
	outFlag := flags.String("out", "", "where to write the file: a path, or a directory to put it in (default: its name, in the current directory)")
	force := flags.Bool("force", false, "replace an existing file at the output path")
	timeout := flags.Duration("timeout", 0, "give up waiting after this long (default: wait while the download goes on)")
	pos, err := parseArgs(e, flags, args, 1, 1, synopsis)
	if err != nil {
		return err
	}
	if *timeout < 0 {
		return usagef("--timeout must not be negative")
	}
	id := pos[0]
	// An explicit path is checked before anything starts downloading.
	if *outFlag != "" {
		if _, err := outputPath(*outFlag, "", id, *force); err != nil {
			return err
		}
	}
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if *timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, *timeout)
		defer cancelT()
	}

	// Subscribe before starting the download, so that no progress event
	// falls between the two.
	c := api.NewClient(socketPath(e.home))
	sub, err := c.Subscribe(ctx, 0)
	if err != nil {
		return clientError(e, err)
	}
	defer sub.Close()
	var m apitypes.Message
	err = c.Call(ctx, "getFile", apitypes.FileParams{ID: id}, &m)
	if ae := (*api.Error)(nil); errors.As(err, &ae) && ae.Data != nil && ae.Data.Reason == "unknown_message" {
		// Most often the file's message has not arrived yet (the daemon
		// just started, its mailboxes are still being read).
		return exitError{code: 1, msg: fmt.Sprintf("no message %s on this device (yet): a file can be fetched once its message has arrived; hush messages NAME lists them", id)}
	}
	if err := clientError(e, err); err != nil {
		return err
	}
	if m.File == nil {
		return exitError{code: 1, msg: fmt.Sprintf("message %s carries no file", id)}
	}
	out, err := outputPath(*outFlag, m.File.Name, id, *force)
	if err != nil {
		return err
	}
	if m, err = followDownload(ctx, e, c, sub, m, *timeout); err != nil {
		return err
	}
	if err := call(ctx, e, "getFile", apitypes.FileParams{ID: id, Out: out, Replace: *force}, &m); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "saved %s (%s)\n", out, humanSize(m.File.Size))
	return nil
}

// fileSettled reports whether a file in state s is past downloading.
func fileSettled(s string) bool {
	return s != apitypes.FileOffered && s != apitypes.FileDownloading
}

// followDownload waits for m's file with waitFile, as many times as it
// takes (the API waits at most MaxFileTimeout per call), and shows its
// update events as a progress bar (on a terminal, see showBars). It returns the message once the file
// is done (or this device's own), an error if it failed or expired, or
// when ctx ends.
func followDownload(ctx context.Context, e *env, c *api.Client, sub *api.Subscription, m apitypes.Message, limit time.Duration) (apitypes.Message, error) {
	bar := phaseBar{fileBar: fileBar{w: e.stderr, name: displayName(m.File.Name, m.ID)}, on: e.showBars()}
	defer bar.stop()
	if !fileSettled(m.File.State) {
		bar.update(m.File.Bytes, m.File.Size)
		type waited struct {
			m   apitypes.Message
			err error
		}
		results := make(chan waited, 1)
		go func() {
			for {
				var w apitypes.Message
				err := c.Call(ctx, "waitFile", apitypes.FileParams{ID: m.ID, Timeout: api.MaxFileTimeout.String()}, &w)
				var ae *api.Error
				if errors.As(err, &ae) && ae.Code == api.CodeTimeout && ctx.Err() == nil {
					continue // the download goes on; so does the wait
				}
				results <- waited{w, err}
				return
			}
		}()
		events := sub.Events
	wait:
		for {
			select {
			case <-ctx.Done():
				return m, stoppedWaiting(ctx, m.ID, limit)
			case ev, ok := <-events:
				if !ok {
					events = nil // no more progress to show; the wait goes on
					continue
				}
				if ev.Message != nil && ev.Message.ID == m.ID && ev.Message.File != nil {
					bar.update(ev.Message.File.Bytes, ev.Message.File.Size)
				}
			case r := <-results:
				if r.err != nil {
					if ctx.Err() != nil {
						return m, stoppedWaiting(ctx, m.ID, limit)
					}
					return m, clientError(e, r.err)
				}
				m = r.m
				break wait
			}
		}
	}
	switch m.File.State {
	case apitypes.FileFailed:
		msg := "download failed"
		if m.File.Error != "" {
			msg += ": " + m.File.Error
		}
		return m, exitError{code: 1, msg: msg + "; `hush file get " + m.ID + "` tries again"}
	case apitypes.FileExpired:
		return m, exitError{code: 1, msg: "the file expired: no source has it any more; ask the sender to send it again"}
	}
	if bar.bar != nil {
		bar.finish(m.File.Size)
	}
	return m, nil
}

// stoppedWaiting says why the wait for id's file ended early.
func stoppedWaiting(ctx context.Context, id string, limit time.Duration) error {
	again := "the daemon goes on downloading; `hush file get " + id + "` saves it"
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return exitError{code: 1, msg: fmt.Sprintf("the download did not finish within %v; %s", limit, again)}
	}
	return exitError{code: 1, msg: "stopped waiting; " + again}
}

// outputPath is where `file get` writes: flagOut (made absolute; an
// existing directory gets the file's name in it), else the file's name
// in the current directory. It refuses an existing file unless force,
// and a missing directory. With name "" and flagOut a directory it
// returns "" (the name is not known yet).
func outputPath(flagOut, name, id string, force bool) (string, error) {
	out := flagOut
	if out == "" {
		out = safeFileName(name, id)
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", fmt.Errorf("%s: %w", out, err)
	}
	if flagOut != "" {
		if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
			if name == "" {
				return "", nil
			}
			abs = filepath.Join(abs, safeFileName(name, id))
		}
	}
	fi, err := os.Lstat(abs)
	switch {
	case err == nil && fi.IsDir():
		return "", exitError{code: 1, msg: abs + " is a directory; choose a file name with --out PATH"}
	case err == nil && !force:
		return "", exitError{code: 1, msg: abs + " already exists; --force replaces it, --out PATH writes elsewhere"}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", exitError{code: 1, msg: "cannot write " + abs + ": " + pathErr(err)}
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return "", exitError{code: 1, msg: "no directory " + filepath.Dir(abs) + " to write " + filepath.Base(abs) + " in"}
	}
	return abs, nil
}

// safeFileName makes the name a sender gave a file into a file name
// that stays in the directory it is written to and is not hidden: the
// last element of any path, no leading dots, no control, invisible or
// text-direction characters. Nothing left: hush-file-ID.
func safeFileName(name, id string) string {
	n := path.Base(strings.ReplaceAll(name, `\`, "/"))
	n = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Bidi_Control, r) {
			return '_'
		}
		return r
	}, n)
	n = strings.TrimSpace(strings.TrimLeft(n, "."))
	if n == "" || n == "/" {
		return "hush-file-" + id
	}
	return n
}

// displayName is a file's name for a terminal line: safe, and at most 32
// characters.
func displayName(name, id string) string {
	n := safeFileName(name, id)
	if r := []rune(n); len(r) > 32 {
		n = string(r[:31]) + "…"
	}
	return n
}

// fileBar is a download's progress bar on w (stderr), bytes of a size.
// The zero value (with w and name set) shows nothing until the first
// update.
type fileBar struct {
	w    io.Writer
	name string
	bar  *progressbar.ProgressBar
}

// update shows bytes of size.
func (f *fileBar) update(bytes, size int64) {
	if size <= 0 {
		return
	}
	if f.bar == nil {
		f.bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(f.w),
			progressbar.OptionSetDescription(f.name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
		)
	}
	if size != f.bar.GetMax64() {
		f.bar.ChangeMax64(size)
	}
	f.bar.Set64(min(bytes, size))
}

// finish fills the bar, if one is showing, and ends its line.
func (f *fileBar) finish(size int64) {
	if f.bar == nil {
		return
	}
	f.update(size, size)
	f.bar.Finish()
	fmt.Fprintln(f.w)
	f.bar = nil
}

// stop ends the bar's line where it is, if one is showing.
func (f *fileBar) stop() {
	if f.bar != nil {
		f.bar.Exit()
		fmt.Fprintln(f.w)
		f.bar = nil
	}
}

// fileAuto is `file auto NAME [off|default|SIZE]`: this device's
// auto-download policy for a conversation (a group with --group), shown,
// or set first. SIZE is bytes or a number with a unit (500KiB, 20MB,
// 1GiB).
func fileAuto(ctx context.Context, e *env, args []string) error {
	const synopsis = "file auto NAME [off|default|SIZE] [--group] [--json]"
	flags := newFlags(e, "file auto")
	isGroup := flags.Bool("group", false, "NAME is a group")
	asJSON := flags.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(e, flags, args, 1, 2, synopsis)
	if err != nil {
		return err
	}
	p := apitypes.AutoDownloadParams{Contact: pos[0]}
	if *isGroup {
		p = apitypes.AutoDownloadParams{Group: pos[0]}
	}
	if len(pos) == 2 {
		limit, err := parseAutoLimit(pos[1])
		if err != nil {
			return err
		}
		p.Limit = &limit
	}
	a, shown, err := callDecoded[apitypes.AutoDownload](ctx, e, "autoDownload", p, *asJSON, "a malformed answer")
	if err != nil || shown {
		return err
	}
	switch {
	case a.Limit == 0:
		fmt.Fprintf(e.stdout, "auto-download with %s: off (files wait for hush file get)\n", pos[0])
	case a.Default:
		fmt.Fprintf(e.stdout, "auto-download with %s: files up to %s (the default)\n", pos[0], humanSize(a.Limit))
	default:
		fmt.Fprintf(e.stdout, "auto-download with %s: files up to %s\n", pos[0], humanSize(a.Limit))
	}
	return nil
}

// parseAutoLimit reads an auto-download limit: "off" (0), "default"
// (-1), a number of bytes, or one with a unit: B, KB, MB, GB (powers of
// 1000), KiB, MiB, GiB (of 1024), any case.
func parseAutoLimit(s string) (int64, error) {
	switch strings.ToLower(s) {
	case "off", "0":
		return 0, nil
	case "default":
		return -1, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}, {"", 1}}
	low := strings.ToLower(strings.TrimSpace(s))
	for _, u := range units {
		num, ok := strings.CutSuffix(low, u.suffix)
		if !ok {
			continue
		}
		num = strings.TrimSpace(num)
		if num == "" || strings.Trim(num, "0123456789.") != "" {
			break // digits only: no sign, exponent, inf or nan
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v*float64(u.mult) > 1<<40 {
			break
		}
		return int64(v * float64(u.mult)), nil
	}
	return 0, usagef("%q is not a size: give off, default, bytes, or a number with KiB, MiB or GiB", s)
}

// fileList is `file list NAME`: the contact's messages with files, as a
// table or the API's JSON.
func fileList(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "file list")
	asJSON := flags.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(e, flags, args, 1, 1, "file list NAME [--json]")
	if err != nil {
		return err
	}
	ms, shown, err := callDecoded[[]apitypes.Message](ctx, e, "listFiles", apitypes.ContactParams{Contact: pos[0]}, *asJSON, "a malformed file list")
	if err != nil || shown {
		return err
	}
	if len(ms) == 0 {
		fmt.Fprintf(e.stdout, "no files with %s yet\n", pos[0])
		return nil
	}
	fmt.Fprintf(e.stdout, "%-32s  %-32s  %10s  %-11s  %s\n", "ID", "NAME", "SIZE", "STATE", "BYTES")
	for _, m := range ms {
		if m.File == nil {
			continue
		}
		f := m.File
		line := fmt.Sprintf("%-32s  %-32s  %10s  %-11s  %s", m.ID, displayName(f.Name, m.ID), humanSize(f.Size), f.State, fileBytes(f))
		if media := mediaInfo(f); media != "" {
			line += "  " + media
		}
		if (f.State == apitypes.FileFailed || f.State == apitypes.FileExpired) && f.Error != "" {
			line += "  (" + oneLine(f.Error) + ")"
		}
		fmt.Fprintln(e.stdout, strings.TrimRight(line, " "))
	}
	return nil
}

// mediaInfo is what a file list shows of an image's size or a
// recording's duration: "1920x1080", "3:05", "1:02:03"; "" if neither is
// known.
func mediaInfo(f *apitypes.FileInfo) string {
	var parts []string
	if f.Width > 0 && f.Height > 0 {
		parts = append(parts, fmt.Sprintf("%dx%d", f.Width, f.Height))
	}
	if f.DurationMS > 0 {
		sec := (f.DurationMS + 500) / 1000 // to the nearest second
		if sec >= 3600 {
			parts = append(parts, fmt.Sprintf("%d:%02d:%02d", sec/3600, sec/60%60, sec%60))
		} else {
			parts = append(parts, fmt.Sprintf("%d:%02d", sec/60, sec%60))
		}
	}
	return strings.Join(parts, " ")
}

// fileBytes is the BYTES column: how much of the file this device has.
func fileBytes(f *apitypes.FileInfo) string {
	switch f.State {
	case apitypes.FileDownloading, apitypes.FileFailed:
		if f.Size > 0 {
			return fmt.Sprintf("%s (%d%%)", humanSize(f.Bytes), f.Bytes*100/f.Size)
		}
		return humanSize(f.Bytes)
	case apitypes.FileDone, apitypes.FileSent:
		return humanSize(f.Size)
	}
	return "-"
}

// humanSize is n bytes in binary units: "512 B", "1.5 KiB", "16.0 MiB".
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
