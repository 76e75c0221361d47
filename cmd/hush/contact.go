package main

// The contact verbs of issue 17 (docs/protocol/addresses.md §20.6, §20.7):
// rename, block, unblock, blocked, verify --qr / --scanned, and
// `hush profile`.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/skip2/go-qrcode"

	"github.com/hushnet/hush/api/apitypes"
)

func contactRename(ctx context.Context, e *env, args []string) error {
	pos, err := parseArgs(e, newFlags(e, "contact rename"), args, 2, 2, "contact rename OLD NEW")
	if err != nil {
		return err
	}
	var c apitypes.Contact
	if err := call(ctx, e, "renameContact", apitypes.RenameContactParams{Name: pos[0], NewName: pos[1]}, &c); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s is now %s (a local name: their profile name no longer changes it)\n", pos[0], c.Name)
	return nil
}

func contactBlock(ctx context.Context, e *env, args []string) error {
	pos, err := parseArgs(e, newFlags(e, "contact block"), args, 1, 1, "contact block NAME")
	if err != nil {
		return err
	}
	var c apitypes.Contact
	if err := call(ctx, e, "blockContact", apitypes.NameParams{Name: pos[0]}, &c); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "blocked %s: nothing from them is kept or shown, and nothing is sent to them (hush contact unblock %s)\n", c.Name, c.Name)
	return nil
}

func contactUnblock(ctx context.Context, e *env, args []string) error {
	pos, err := parseArgs(e, newFlags(e, "contact unblock"), args, 1, 1, "contact unblock NAME|ACCOUNT")
	if err != nil {
		return err
	}
	if err := call(ctx, e, "unblockContact", apitypes.NameParams{Name: pos[0]}, nil); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "unblocked %s\n", pos[0])
	return nil
}

func contactBlocked(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "contact blocked")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if _, err := parseArgs(e, fs, args, 0, 0, "contact blocked [--json]"); err != nil {
		return err
	}
	list, shown, err := callDecoded[[]apitypes.BlockedAccount](ctx, e, "listBlocked", nil, *asJSON, "a malformed block list")
	if err != nil || shown {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "nobody is blocked")
		return nil
	}
	for _, b := range list {
		note := ""
		if !b.Contact {
			note = "  (no longer a contact: hush contact unblock " + b.Account + ")"
		}
		fmt.Fprintf(e.stdout, "%-20s since %s%s\n", b.Name, b.Since.Local().Format("2006-01-02 15:04"), note)
	}
	return nil
}

// digitsOnly keeps the digits of s.
func digitsOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// contactVerifyQR prints the safety number with a contact as a QR code
// (the 60 digits alone: numeric mode) and as digits.
func contactVerifyQR(ctx context.Context, e *env, name string) error {
	var sn apitypes.SafetyNumberResult
	if err := call(ctx, e, "safetyNumber", apitypes.NameParams{Name: name}, &sn); err != nil {
		return err
	}
	digits := digitsOnly(sn.SafetyNumber)
	code, err := qrcode.New(digits, qrcode.Medium)
	if err != nil {
		return fmt.Errorf("making QR code: %w", err)
	}
	fmt.Fprint(e.stdout, code.ToSmallString(false))
	fmt.Fprintf(e.stdout, "Safety number with %s:\n\n%s\n", name, groupSafetyNumber(digits))
	fmt.Fprintf(e.stdout, "On %s's device, scan it and run: hush contact verify NAME --scanned DIGITS\n", name)
	return nil
}

// contactVerifyScanned verifies a contact by a scanned safety number.
func contactVerifyScanned(ctx context.Context, e *env, name, scanned string) error {
	var c apitypes.Contact
	if err := call(ctx, e, "verifyContact", apitypes.VerifyContactParams{Name: name, SafetyNumber: scanned}, &c); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "The safety numbers match: %s is verified.\n", c.Name)
	return nil
}

const profileSynopsis = "profile set [--name NAME] [--avatar FILE | --no-avatar]"

// runProfile is `hush profile`: the name and avatar contacts see.
func runProfile(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("usage: hush %s", profileSynopsis)
	}
	switch args[0] {
	case "set":
		return profileSet(ctx, e, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: hush %s\n", profileSynopsis)
		return nil
	}
	return usagef("unknown profile command %q; usage: hush %s", args[0], profileSynopsis)
}

func profileSet(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "profile set")
	name := fs.String("name", "", "the name your contacts see")
	avatar := fs.String("avatar", "", "a JPEG or PNG picture (sent as a JPEG of at most 96×96)")
	noAvatar := fs.Bool("no-avatar", false, "remove your avatar")
	if _, err := parseArgs(e, fs, args, 0, 0, profileSynopsis); err != nil {
		return err
	}
	if *name == "" && *avatar == "" && !*noAvatar {
		return usagef("profile set needs --name, --avatar or --no-avatar; usage: hush %s", profileSynopsis)
	}
	if *avatar != "" && *noAvatar {
		return usagef("--avatar and --no-avatar exclude each other")
	}
	p := apitypes.SetProfileParams{Name: *name, RemoveAvatar: *noAvatar}
	if *avatar != "" {
		abs, err := filepath.Abs(*avatar)
		if err != nil {
			return err
		}
		p.AvatarPath = abs
	}
	var self apitypes.Self
	if err := call(ctx, e, "setProfile", p, &self); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "name:   %s\n", self.Name)
	if len(self.Avatar) > 0 {
		fmt.Fprintf(e.stdout, "avatar: a %d-byte JPEG\n", len(self.Avatar))
	} else {
		fmt.Fprintln(e.stdout, "avatar: none")
	}
	fmt.Fprintln(e.stdout, "Your contacts get it as soon as they are reachable.")
	return nil
}
