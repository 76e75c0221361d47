package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/skip2/go-qrcode"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

// Short links (docs/protocol/addresses.md §20.4): the account's
// reusable address and its one-time invitations.

const (
	addressSynopsis = "address create [--rotate] [--qr] | show [--qr] [--json] | delete"
	inviteSynopsis  = "invite create [--name LABEL] [--qr] [--json] | list [--json] | delete ID"
)

// printLinkQR prints a short link as a QR code in half blocks: a link of
// at most 120 characters in QR alphanumeric mode is a version 4 to 6
// code, which fits an 80×24 terminal.
func printLinkQR(w io.Writer, link string) error {
	code, err := qrcode.New(strings.ToUpper(link), qrcode.Low)
	if err != nil {
		return fmt.Errorf("making QR code: %w", err)
	}
	fmt.Fprint(w, code.ToSmallString(false))
	return nil
}

// printShortLink prints a createAddress, getAddress or createInvite
// answer: the API's JSON, or the link (and its QR).
func printShortLink(e *env, raw json.RawMessage, asJSON, qr bool) error {
	if asJSON {
		return printJSON(e.stdout, raw)
	}
	var l apitypes.ShortLink
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("daemon sent a malformed link: %w", err)
	}
	fmt.Fprintln(e.stdout, l.Link)
	if qr {
		return printLinkQR(e.stdout, l.Link)
	}
	return nil
}

func runAddress(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("usage: hush %s", addressSynopsis)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create", "show":
		flags := newFlags(e, "address "+sub)
		qr := flags.Bool("qr", false, "also print the link as a QR code")
		rotate, asJSON, txn := new(bool), new(bool), new(string)
		if sub == "create" {
			rotate = flags.Bool("rotate", false, "replace the address: the old link stops bringing requests")
			txn = flags.String("txn-id", "", "client transaction ID: a retry with the same ID makes nothing new")
		} else {
			asJSON = flags.Bool("json", false, "print the API's JSON")
		}
		if _, err := parseArgs(e, flags, rest, 0, 0, "address "+sub); err != nil {
			return err
		}
		var raw json.RawMessage
		var err error
		if sub == "create" {
			err = call(ctx, e, "createAddress", apitypes.CreateAddressParams{Rotate: *rotate, TxnID: *txn}, &raw)
		} else {
			err = call(ctx, e, "getAddress", nil, &raw)
		}
		if err != nil {
			return err
		}
		if err := printShortLink(e, raw, *asJSON, *qr); err != nil || *asJSON {
			return err
		}
		if sub == "create" {
			fmt.Fprintln(e.stdout, "Publish it: people who use it arrive as message requests (hush request list).")
		}
		return nil
	case "delete":
		if _, err := parseArgs(e, newFlags(e, "address delete"), rest, 0, 0, "address delete"); err != nil {
			return err
		}
		if err := call(ctx, e, "deleteAddress", nil, nil); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "address deleted: it brings no new requests; your contacts stay")
		return nil
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: hush %s\n", addressSynopsis)
		return nil
	}
	return usagef("unknown address command %q; usage: hush %s", sub, addressSynopsis)
}

func runInvite(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("usage: hush %s", inviteSynopsis)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create":
		flags := newFlags(e, "invite create")
		label := flags.String("name", "", "the name the person who uses it gets in your contacts")
		qr := flags.Bool("qr", false, "also print the link as a QR code")
		asJSON := flags.Bool("json", false, "print the API's JSON")
		txn := flags.String("txn-id", "", "client transaction ID: a retry with the same ID makes nothing new")
		if _, err := parseArgs(e, flags, rest, 0, 0, "invite create [--name LABEL] [--qr] [--json] [--txn-id ID]"); err != nil {
			return err
		}
		var raw json.RawMessage
		if err := call(ctx, e, "createInvite", apitypes.CreateInviteParams{Label: *label, TxnID: *txn}, &raw); err != nil {
			return err
		}
		if err := printShortLink(e, raw, *asJSON, *qr); err != nil || *asJSON {
			return err
		}
		fmt.Fprintln(e.stdout, "One use: the first person to use it becomes your contact; then it stops working.")
		return nil
	case "list", "ls":
		flags := newFlags(e, "invite list")
		asJSON := flags.Bool("json", false, "print the API's JSON")
		if _, err := parseArgs(e, flags, rest, 0, 0, "invite list [--json]"); err != nil {
			return err
		}
		ls, shown, err := callDecoded[[]apitypes.ShortLink](ctx, e, "listInvites", nil, *asJSON, "a malformed list")
		if err != nil || shown {
			return err
		}
		if len(ls) == 0 {
			fmt.Fprintln(e.stdout, "no invitations (hush invite create)")
			return nil
		}
		for _, l := range ls {
			state := "open"
			if l.Used {
				state = "used"
			}
			fmt.Fprintf(e.stdout, "%s  %-4s  %-20s  %s\n", l.ID[:16], state, oneLine(l.Label), l.Link)
		}
		return nil
	case "delete", "rm":
		pos, err := parseArgs(e, newFlags(e, "invite delete"), rest, 1, 1, "invite delete ID")
		if err != nil {
			return err
		}
		if err := call(ctx, e, "deleteInvite", apitypes.IDParams{ID: pos[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "invitation deleted")
		return nil
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: hush %s\n", inviteSynopsis)
		return nil
	}
	return usagef("unknown invite command %q; usage: hush %s", sub, inviteSynopsis)
}

// ownAddress is the account's address link, or "" if it has none.
func ownAddress(ctx context.Context, e *env) (string, error) {
	var l apitypes.ShortLink
	err := api.NewClient(socketPath(e.home)).Call(ctx, "getAddress", nil, &l)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Data != nil && ae.Data.Reason == "no_address" {
		return "", nil
	}
	return l.Link, clientError(e, err)
}
