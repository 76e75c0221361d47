// Command hush is the hush desktop node: `hush init` creates an identity,
// `hush daemon` runs the node with its local API, and the other verbs are
// clients of the running daemon over its Unix socket (HOME/api.sock).
//
// Run `hush help` for the verbs; docs/API.md describes the API they use.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

func main() {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(context.Background(), os.Args[1:], e))
}

// env is the process environment a verb sees; tests substitute it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	home           string    // resolved --home
	historyOnce    sync.Once // the history check of call, once per run
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// exitError carries a message and a status; an empty message prints
// nothing (the verb already explained).
type exitError struct {
	code int
	msg  string
}

func (x exitError) Error() string { return x.msg }

type verb struct {
	name    string
	summary string // one line, with the argument synopsis
	run     func(ctx context.Context, e *env, args []string) error
}

var verbs []verb

func init() {
	verbs = []verb{
		{"init", "init --name NAME [--device-name NAME] (--passphrase-file F | --no-passphrase)   create an identity", runInit},
		{"daemon", "daemon [--listen MULTIADDR]... [--relay MULTIADDR]... [--api-addr 127.0.0.1:PORT] [--no-mdns] [--passphrase-file F]", runDaemon},
		{"id", "id [--qr]                      your contact links, fingerprint (and QR code)", runID},
		{"contact", "contact add NAME LINK | list [--json] | verify NAME [--yes|--qr|--scanned DIGITS] | remove NAME | rename OLD NEW | block NAME | unblock NAME | blocked", runContact},
		{"profile", "profile set [--name NAME] [--avatar FILE | --no-avatar]   the name and picture your contacts see", runProfile},
		{"request", "request list [--json] | accept NAME | decline NAME | block NAME   message requests: first messages from strangers", runRequest},
		{"address", "address create [--rotate] [--qr] | show [--qr] [--json] | delete   your reusable short link", runAddress},
		{"invite", "invite create [--name LABEL] [--qr] | list [--json] | delete ID   one-time short links", runInvite},
		{"send", "send NAME TEXT [--wait delivered|read] [--timeout 30s] [--reply-to ID]", runSend},
		{"react", "react NAME MSGID EMOJI [--remove]   react to a message", runReact},
		{"edit", "edit NAME MSGID TEXT           edit a message you sent", runEdit},
		{"delete", "delete NAME MSGID [--local] [--group]   delete a message you sent for everyone (within the recall window), or any message on this device only", runDelete},
		{"read", "read NAME [--group]            mark NAME's messages as read", runRead},
		{"messages", "messages NAME [--group] [--limit N] [--before ID] [--after ID] [--json]   conversation history, oldest first (a group's: read counts on what you sent)", runMessages},
		{"chats", "chats [--archived] [--json]    conversations: pinned first, then the most recent", runChats},
		{"chat", "chat NAME | chat mute|unmute|pin|unpin|archive|unarchive|clear NAME [--group]   interactive chat, or a conversation's settings", runChat},
		{"search", "search TEXT [--in NAME [--group]] [--limit N] [--json]   find messages in every conversation, newest first", runSearch},
		{"timer", "timer NAME 1h|1d|1w|off [--group]   disappearing messages in a conversation", runTimer},
		{"presence", "presence [on|off]              online / last seen, shown to and from contacts who turned it on too", runPresence},
		{"group", "group create|invite|accept|decline|remove|leave|send|messages|list ...   groups (hush group help)", runGroup},
		{"file", "file send NAME PATH [--caption TEXT] [--wait delivered|read] | get MSGID [--out PATH] [--force] | list NAME [--json]   files", runFile},
		{"device", "device link [--json] [--no-wait] | join CODE [--name NAME] [--history-days N] | list [--json] | revoke ID   this account's devices", runDevice},
		{"push", "push register|verify|status|unregister ...   wake-ups through a push bridge (hush push help)", runPush},
		{"ui", "ui [--print]                   open the web UI in a browser (or print its one-time login link)", runUI},
		{"api", "api token create [--read-only] [--name LABEL] | token list [--json] | token revoke NAME|ID   HTTP API tokens", runAPI},
		{"repair", "repair [--passphrase-file F]   recover a damaged store (the daemon stopped), say what was lost", runRepair},
		{"demo", "demo                           show hush working on embedded defaults", runDemo},
		{"version", "version                        print the version", runVersion},
		{"help", "help                           this text", runHelp},
	}
}

func usageText() string {
	var b strings.Builder
	b.WriteString("usage: hush [--home DIR] <command> [arguments]\n\ncommands:\n")
	for _, v := range verbs {
		fmt.Fprintf(&b, "  hush %s\n", v.summary)
	}
	b.WriteString("\nHOME is --home, else $HUSH_HOME, else $XDG_DATA_HOME/hush, else ~/.local/share/hush.\n")
	b.WriteString("Every verb but init, daemon, device join, api token, repair, demo, version and help talks to the running daemon.\n")
	return b.String()
}

// run is main without the exit: it returns the process status.
func run(ctx context.Context, args []string, e *env) int {
	err := dispatch(ctx, args, e)
	if err == nil {
		return 0
	}
	var u usageError
	var x exitError
	switch {
	case errors.As(err, &u):
		fmt.Fprintf(e.stderr, "hush: %s (run `hush help`)\n", oneLine(u.msg))
		return 2
	case errors.As(err, &x):
		if x.msg != "" {
			fmt.Fprintf(e.stderr, "hush: %s\n", oneLine(x.msg))
		}
		return x.code
	default:
		fmt.Fprintf(e.stderr, "hush: %s\n", oneLine(err.Error()))
		return 1
	}
}

// oneLine is s for one terminal line: white space runs become one space,
// and control characters (an escape sequence from a contact's text or
// a stranger's name would drive the terminal) and bidi controls become
// U+FFFD.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return utf8.RuneError
		}
		return r
	}, s)
}

func dispatch(ctx context.Context, args []string, e *env) error {
	global := flag.NewFlagSet("hush", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	home := global.String("home", "", "home directory")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, usageText())
			return nil
		}
		return usageError{err.Error()}
	}
	rest := global.Args()
	if len(rest) == 0 {
		fmt.Fprint(e.stderr, usageText())
		return exitError{code: 2}
	}
	name := rest[0]
	for _, v := range verbs {
		if v.name == name {
			h, err := resolveHome(*home, e.getenv)
			if err != nil {
				return err
			}
			e.home = h
			return v.run(ctx, e, rest[1:])
		}
	}
	if name == "-h" || name == "--help" {
		fmt.Fprint(e.stdout, usageText())
		return nil
	}
	return usagef("unknown command %q", name)
}

// resolveHome picks the home directory: the flag, $HUSH_HOME,
// $XDG_DATA_HOME/hush, then ~/.local/share/hush.
func resolveHome(flagHome string, getenv func(string) string) (string, error) {
	h := flagHome
	if h == "" {
		h = getenv("HUSH_HOME")
	}
	if h == "" {
		if x := getenv("XDG_DATA_HOME"); x != "" {
			h = filepath.Join(x, "hush")
		}
	}
	if h == "" {
		u := getenv("HOME")
		if u == "" {
			var err error
			if u, err = os.UserHomeDir(); err != nil {
				return "", fmt.Errorf("cannot find a home directory; pass --home DIR")
			}
		}
		h = filepath.Join(u, ".local", "share", "hush")
	}
	abs, err := filepath.Abs(h)
	if err != nil {
		return "", fmt.Errorf("home directory %q: %w", h, err)
	}
	return abs, nil
}

// newFlags returns a verb's flag set; --home is accepted after the verb too.
func newFlags(e *env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("hush "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Func("home", "home directory", func(s string) error {
		h, err := filepath.Abs(s)
		if err != nil {
			return err
		}
		e.home = h
		return nil
	})
	return fs
}

// parseArgs parses flags wherever they appear among the positional
// arguments ("send alice hi --wait delivered"); everything after "--" is
// positional. It checks the positional count against min and max (-1: no
// limit).
func parseArgs(e *env, fs *flag.FlagSet, args []string, min, max int, synopsis string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(e.stdout, "usage: hush %s\n", synopsis)
				fs.SetOutput(e.stdout)
				fs.PrintDefaults()
				return nil, exitError{code: 0}
			}
			return nil, usagef("%s: %v; usage: hush %s", fs.Name(), err, synopsis)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	pos = append(pos, tail...)
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, usagef("usage: hush %s", synopsis)
	}
	return pos, nil
}

func runHelp(_ context.Context, e *env, args []string) error {
	fmt.Fprint(e.stdout, usageText())
	return nil
}
