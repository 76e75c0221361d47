package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

// socketPath is where the daemon for home listens.
func socketPath(home string) string { return filepath.Join(home, api.SocketFile) }

// call runs one API method against the daemon for e.home. The first
// call of a CLI run that reaches the daemon also asks for its health,
// to warn about an incomplete history transfer (checkHistory).
func call(ctx context.Context, e *env, method string, params, result any) error {
	c := api.NewClient(socketPath(e.home))
	err := c.Call(ctx, method, params, result)
	var ae *api.Error
	if err == nil || errors.As(err, &ae) {
		e.historyOnce.Do(func() { checkHistory(ctx, e, c) })
	}
	return clientError(e, err)
}

// historyCheckTimeout bounds checkHistory's health call.
const historyCheckTimeout = 2 * time.Second

// checkHistory asks the daemon for its health and warns on stderr if
// this device's history transfer is incomplete. It is quiet when the
// daemon cannot say (an older daemon has no health method).
func checkHistory(ctx context.Context, e *env, c *api.Client) {
	ctx, cancel := context.WithTimeout(ctx, historyCheckTimeout)
	defer cancel()
	var h apitypes.Health
	if c.Call(ctx, "health", nil, &h) == nil {
		warnHistory(e, h.History)
	}
}

// warnHistory warns on stderr that the history transfer of this device
// is incomplete, if h says so.
func warnHistory(e *env, h *apitypes.HistoryProgress) {
	if h == nil || h.Complete {
		return
	}
	fmt.Fprintf(e.stderr, "warning: history transfer incomplete: %d of %d items; the daemon resumes it when the other device is reachable\n", h.Done, h.Total)
}

// clientError turns API client errors into what the user should read.
func clientError(e *env, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, api.ErrNoDaemon) {
		return exitError{code: 1, msg: fmt.Sprintf("no daemon running for %s; start it with: hush --home %s daemon", e.home, e.home)}
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return exitError{code: 1, msg: ae.Message}
	}
	return exitError{code: 1, msg: strings.TrimPrefix(err.Error(), "api: ")}
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("daemon sent malformed JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// callDecoded calls method; with asJSON it prints the daemon's answer as
// it came (shown), otherwise it decodes it into a T. what names the
// answer in the error for a malformed one ("malformed messages").
func callDecoded[T any](ctx context.Context, e *env, method string, params any, asJSON bool, what string) (v T, shown bool, err error) {
	var raw json.RawMessage
	if err = call(ctx, e, method, params, &raw); err != nil {
		return v, false, err
	}
	if asJSON {
		return v, true, printJSON(e.stdout, raw)
	}
	if err = json.Unmarshal(raw, &v); err != nil {
		return v, false, fmt.Errorf("daemon sent %s: %w", what, err)
	}
	return v, false, nil
}

func runID(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "id")
	qr := fs.Bool("qr", false, "also print the link as a QR code")
	asJSON := fs.Bool("json", false, "print as JSON")
	if _, err := parseArgs(e, fs, args, 0, 0, "id [--qr] [--json]"); err != nil {
		return err
	}
	self, shown, err := callDecoded[apitypes.Self](ctx, e, "getSelf", nil, *asJSON, "a malformed identity")
	if err != nil || shown {
		return err
	}
	address, err := ownAddress(ctx, e)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, self.Link) // first: scripts take the first line
	if address != "" {
		fmt.Fprintf(e.stdout, "address:     %s\n", address)
	}
	fmt.Fprintf(e.stdout, "name:        %s\n", self.Name)
	fmt.Fprintf(e.stdout, "fingerprint: %s\n", self.Fingerprint)
	fmt.Fprintf(e.stdout, "device:      %s\n", self.Device)
	if self.PeerID != "" {
		fmt.Fprintf(e.stdout, "peer id:     %s\n", self.PeerID)
	}
	for _, a := range self.Addrs {
		fmt.Fprintf(e.stdout, "listening:   %s\n", a)
	}
	if self.Protected {
		fmt.Fprintln(e.stdout, "store:       protected by a passphrase")
	} else {
		fmt.Fprintln(e.stdout, "store:       no passphrase (key in a 0600 file next to the data)")
	}
	fmt.Fprintln(e.stdout, "Compare safety numbers with a contact: hush contact verify NAME")
	if self.Relays > 0 && self.Mailboxes == 0 {
		fmt.Fprintln(e.stderr, "warning: no relay has a mailbox for you yet (unreachable?): this link reaches you only while your daemon is online; print it again once a relay answers")
	}
	if !*qr {
		return nil
	}
	// The QR comes last, so that the screen the command leaves shows all
	// of it: an address's is 23 lines at most, an 80×24 terminal's
	// height with the prompt below it.
	if address != "" {
		return printLinkQR(e.stdout, address)
	}
	fmt.Fprintln(e.stderr, "hush: no address: this QR holds the long link, too large for most phone cameras to read from a screen; hush address create makes a short one")
	// Upper case fits QR alphanumeric mode: a smaller code for the same link.
	code, err := qrcode.New(strings.ToUpper(self.Link), qrcode.Low)
	if err != nil {
		return fmt.Errorf("making QR code: %w", err)
	}
	fmt.Fprint(e.stdout, code.ToSmallString(false))
	return nil
}

func runContact(ctx context.Context, e *env, args []string) error {
	const synopsis = "contact add NAME LINK | list [--json] | verify NAME [--yes | --qr | --scanned DIGITS] | remove NAME |\n" +
		"       rename OLD NEW | block NAME | unblock NAME | blocked [--json]"
	if len(args) == 0 {
		return usagef("usage: hush %s", synopsis)
	}
	switch args[0] {
	case "add":
		return contactAdd(ctx, e, args[1:])
	case "list", "ls":
		return contactList(ctx, e, args[1:])
	case "verify":
		return contactVerify(ctx, e, args[1:])
	case "remove", "rm":
		return contactRemove(ctx, e, args[1:])
	case "rename", "mv":
		return contactRename(ctx, e, args[1:])
	case "block":
		return contactBlock(ctx, e, args[1:])
	case "unblock":
		return contactUnblock(ctx, e, args[1:])
	case "blocked":
		return contactBlocked(ctx, e, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: hush %s\n", synopsis)
		return nil
	}
	return usagef("unknown contact command %q; usage: hush %s", args[0], synopsis)
}

func contactAdd(ctx context.Context, e *env, args []string) error {
	pos, err := parseArgs(e, newFlags(e, "contact add"), args, 2, 2, "contact add NAME LINK")
	if err != nil {
		return err
	}
	var c apitypes.Contact
	if err := call(ctx, e, "addContact", apitypes.AddContactParams{Name: pos[0], Link: pos[1]}, &c); err != nil {
		return err
	}
	if c.KeyChanged {
		fmt.Fprintf(e.stderr, "hush: warning: %s's identity key changed; compare safety numbers, then run: hush contact verify %s\n"+
			"hush: the previous %s and its conversation are kept as %q\n", c.Name, c.Name, c.Name, c.Name+" (previous key)")
	}
	fmt.Fprintf(e.stdout, "added %s (%d device%s)\n", c.Name, c.Devices, plural(c.Devices))
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func contactList(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "contact list")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if _, err := parseArgs(e, fs, args, 0, 0, "contact list [--json]"); err != nil {
		return err
	}
	cs, shown, err := callDecoded[[]apitypes.Contact](ctx, e, "listContacts", nil, *asJSON, "a malformed contact list")
	if err != nil || shown {
		return err
	}
	if len(cs) == 0 {
		fmt.Fprintln(e.stdout, "no contacts yet; add one with: hush contact add NAME LINK")
		return nil
	}
	for _, c := range cs {
		var notes []string
		if c.Verified {
			notes = append(notes, "verified")
		} else {
			notes = append(notes, "not verified")
		}
		if c.KeyChanged {
			notes = append(notes, "KEY CHANGED")
		}
		if c.Request {
			notes = append(notes, "message request")
		}
		if c.Blocked {
			notes = append(notes, "BLOCKED")
		}
		if c.Profile != "" && c.Profile != c.Name {
			notes = append(notes, fmt.Sprintf("calls themselves %q", c.Profile))
		}
		if p := formatPresence(c.Presence, time.Now()); p != "" {
			notes = append(notes, p)
		}
		fmt.Fprintf(e.stdout, "%-20s %d device%s  %s\n", c.Name, c.Devices, plural(c.Devices), strings.Join(notes, ", "))
	}
	return nil
}

// groupSafetyNumber prints 60 digits as 12 blocks of 5, four per line.
func groupSafetyNumber(sn string) string {
	var b strings.Builder
	for i := 0; i < len(sn); i += 5 {
		end := min(i+5, len(sn))
		b.WriteString(sn[i:end])
		switch {
		case end == len(sn):
			b.WriteByte('\n')
		case (i/5)%4 == 3:
			b.WriteByte('\n')
		default:
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func contactVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "contact verify")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	qr := fs.Bool("qr", false, "show the safety number as a QR code for the contact to scan (verifies nothing)")
	scanned := fs.String("scanned", "", "verify if these digits (scanned from the contact's QR code) are the safety number")
	const synopsis = "contact verify NAME [--yes | --qr | --scanned DIGITS]"
	pos, err := parseArgs(e, fs, args, 1, 1, synopsis)
	if err != nil {
		return err
	}
	name := pos[0]
	switch {
	case *qr && *scanned != "":
		return usagef("--qr and --scanned exclude each other; usage: hush %s", synopsis)
	case *qr:
		return contactVerifyQR(ctx, e, name)
	case *scanned != "":
		return contactVerifyScanned(ctx, e, name, *scanned)
	}
	var sn apitypes.SafetyNumberResult
	if err := call(ctx, e, "safetyNumber", apitypes.NameParams{Name: name}, &sn); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Safety number with %s:\n\n%s\n", name, groupSafetyNumber(digitsOnly(sn.SafetyNumber)))
	if !*yes {
		fmt.Fprintf(e.stdout, "Compare it with what %s sees, in person or over a channel you trust.\n", name)
		fmt.Fprint(e.stdout, "Do the numbers match? [y/N] ")
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return exitError{code: 1, msg: fmt.Sprintf("%s not verified", name)}
		}
	}
	var c apitypes.Contact
	if err := call(ctx, e, "verifyContact", apitypes.NameParams{Name: name}, &c); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s is verified.\n", c.Name)
	return nil
}

func contactRemove(ctx context.Context, e *env, args []string) error {
	pos, err := parseArgs(e, newFlags(e, "contact remove"), args, 1, 1, "contact remove NAME")
	if err != nil {
		return err
	}
	if err := call(ctx, e, "removeContact", apitypes.NameParams{Name: pos[0]}, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed %s and your conversation with them\n", pos[0])
	return nil
}

// stateFlag accepts the states --wait can wait for.
func parseWait(s string) (apitypes.MessageState, error) {
	switch s {
	case "", "none":
		return "", nil
	case "sent", "delivered", "read":
		return apitypes.MessageState(s), nil
	}
	return "", usagef("--wait must be sent, delivered or read")
}

func runSend(ctx context.Context, e *env, args []string) error {
	const synopsis = "send NAME TEXT [--wait delivered|read] [--timeout 30s] [--reply-to ID]"
	fs := newFlags(e, "send")
	wait := fs.String("wait", "", "wait until the message is sent, delivered or read")
	timeout := fs.Duration("timeout", 30*time.Second, "how long --wait waits")
	replyTo := fs.String("reply-to", "", "reply to this message ID")
	txn := fs.String("txn-id", "", "client transaction ID: a retry with the same ID is not sent twice")
	pos, err := parseArgs(e, fs, args, 2, -1, synopsis)
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
	p := apitypes.SendParams{To: pos[0], Text: strings.Join(pos[1:], " "), TxnID: *txn}
	if *replyTo != "" {
		p.Kind, p.Target = apitypes.KindReply, *replyTo
	}
	return sendAndReport(ctx, e, p, state, *timeout)
}

func sendAndReport(ctx context.Context, e *env, p apitypes.SendParams, wait apitypes.MessageState, timeout time.Duration) error {
	var m apitypes.Message
	if err := call(ctx, e, "send", p, &m); err != nil {
		return err
	}
	return reportSent(ctx, e, m, wait, timeout)
}

// reportSent prints a sent message's ID and state, after waiting up to
// timeout for it to reach wait unless wait is "". A message that failed
// is exit status 1.
func reportSent(ctx context.Context, e *env, m apitypes.Message, wait apitypes.MessageState, timeout time.Duration) error {
	if wait == "" {
		fmt.Fprintf(e.stdout, "%s %s\n", m.ID, m.State)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	ms := timeout.Milliseconds()
	err := call(ctx, e, "waitMessage", apitypes.WaitMessageParams{ID: m.ID, State: wait, TimeoutMs: &ms}, &m)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s %s\n", m.ID, m.State)
	if m.State == apitypes.StateFailed {
		msg := "message failed"
		if m.Error != "" {
			msg += ": " + m.Error
		}
		return exitError{code: 1, msg: msg}
	}
	return nil
}

func runReact(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "react")
	remove := fs.Bool("remove", false, "take the reaction back")
	pos, err := parseArgs(e, fs, args, 3, 3, "react NAME MSGID EMOJI [--remove]")
	if err != nil {
		return err
	}
	return sendAndReport(ctx, e, apitypes.SendParams{To: pos[0], Kind: apitypes.KindReaction, Target: pos[1], Text: pos[2], Remove: *remove}, "", 0)
}

func runEdit(ctx context.Context, e *env, args []string) error {
	pos, err := parseArgs(e, newFlags(e, "edit"), args, 3, -1, "edit NAME MSGID TEXT")
	if err != nil {
		return err
	}
	return sendAndReport(ctx, e, apitypes.SendParams{To: pos[0], Kind: apitypes.KindEdit, Target: pos[1], Text: strings.Join(pos[2:], " ")}, "", 0)
}

func runDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "delete")
	local := fs.Bool("local", false, "delete it on this device only")
	isGroup := fs.Bool("group", false, "NAME is a group")
	pos, err := parseArgs(e, fs, args, 2, 2, "delete NAME MSGID [--local] [--group]")
	if err != nil {
		return err
	}
	if !*local && !*isGroup {
		return sendAndReport(ctx, e, apitypes.SendParams{To: pos[0], Kind: apitypes.KindDelete, Target: pos[1]}, "", 0)
	}
	p := apitypes.DeleteMessageParams{ID: pos[1], Local: *local}
	p.Contact, p.Group = conversationOf(pos[0], *isGroup)
	if err := call(ctx, e, "deleteMessage", p, nil); err != nil {
		return err
	}
	if *local {
		fmt.Fprintf(e.stdout, "%s deleted on this device\n", pos[1])
	} else {
		fmt.Fprintf(e.stdout, "%s deleted for everyone\n", pos[1])
	}
	return nil
}

// conversationOf is NAME as the contact or the group of a conversation.
func conversationOf(name string, isGroup bool) (contact, group string) {
	if isGroup {
		return "", name
	}
	return name, ""
}

func runRead(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "read")
	isGroup := fs.Bool("group", false, "NAME is a group")
	pos, err := parseArgs(e, fs, args, 1, 1, "read NAME [--group]")
	if err != nil {
		return err
	}
	var p apitypes.ConversationParams
	p.Contact, p.Group = conversationOf(pos[0], *isGroup)
	return call(ctx, e, "markRead", p, nil)
}

func runMessages(ctx context.Context, e *env, args []string) error {
	if i := slices.Index(args, "--group"); i >= 0 { // a group's: as `group messages`
		return groupMessages(ctx, e, slices.Delete(slices.Clone(args), i, i+1))
	}
	return listMessages(ctx, e, args, "messages", "messages NAME [--group] [--limit N] [--before ID] [--after ID] [--json]", "listMessages", "contact",
		func(name string) string { return "no messages with " + name + " yet" }, formatMessage)
}

// listMessages is `messages` and `group messages`: the last N messages of
// a conversation, as the API's JSON or one line each.
func listMessages(ctx context.Context, e *env, args []string, verb, synopsis, method, key string,
	empty func(string) string, format func(apitypes.Message) string) error {
	fs := newFlags(e, verb)
	limit := fs.Int("limit", 50, "show the last N messages (0: all)")
	before := fs.String("before", "", "only messages before this message ID")
	after := fs.String("after", "", "only messages after this message ID")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(e, fs, args, 1, 1, synopsis)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("--limit must not be negative")
	}
	params := map[string]any{key: pos[0], "limit": *limit}
	if *before != "" {
		params["before"] = *before
	}
	if *after != "" {
		params["after"] = *after
	}
	ms, shown, err := callDecoded[[]apitypes.Message](ctx, e, method, params, *asJSON, "malformed messages")
	if err != nil || shown {
		return err
	}
	if len(ms) == 0 {
		fmt.Fprintln(e.stdout, empty(pos[0]))
	}
	for _, m := range ms {
		fmt.Fprintln(e.stdout, format(m))
	}
	return nil
}

// formatMessage is one message for people: time, arrow, ID, state, text,
// then what happened to it.
func formatMessage(m apitypes.Message) string {
	arrow := "←"
	switch m.Direction {
	case "out":
		arrow = "→"
	case "system": // a notice the node wrote: messages missing, session re-established
		return fmt.Sprintf("%s · %s", m.Time.Local().Format("2006-01-02 15:04"), oneLine(m.Text))
	}
	text := m.Text
	if m.Deleted {
		text = "(deleted)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %-9s %s", m.Time.Local().Format("2006-01-02 15:04"), arrow, m.ID, m.State, oneLine(text))
	if m.ReplyTo != "" {
		fmt.Fprintf(&b, "  (reply to %s)", m.ReplyTo)
	}
	if m.Edited && !m.Deleted {
		b.WriteString("  (edited)")
	}
	if len(m.Reactions) > 0 {
		emojis := make([]string, 0, len(m.Reactions))
		for em := range m.Reactions {
			emojis = append(emojis, em)
		}
		sort.Strings(emojis)
		var rs []string
		for _, em := range emojis {
			rs = append(rs, em+" "+strings.Join(m.Reactions[em], ","))
		}
		fmt.Fprintf(&b, "  [%s]", strings.Join(rs, "; "))
	}
	if m.State == apitypes.StateFailed && m.Error != "" {
		fmt.Fprintf(&b, "  (failed: %s)", m.Error)
	}
	if m.ReadOf > 0 { // a group message this account sent
		fmt.Fprintf(&b, "  (read by %d of %d", len(m.ReadBy), m.ReadOf)
		if len(m.ReadBy) > 0 {
			fmt.Fprintf(&b, ": %s", oneLine(strings.Join(m.ReadBy, ", ")))
		}
		b.WriteString(")")
	}
	return b.String()
}
