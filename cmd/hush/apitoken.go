package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/hushnet/hush/api"
)

// HTTP API tokens (docs/API.md, "Tokens"). These verbs work on the files
// in the home directory, with or without a daemon: a running daemon sees
// a change from its next request on.

const apiSynopsis = "api token create [--read-only] [--name LABEL] | token list [--json] | token revoke NAME|ID"

func runAPI(_ context.Context, e *env, args []string) error {
	if len(args) < 2 || args[0] != "token" {
		return usagef("usage: hush %s", apiSynopsis)
	}
	sub, rest := args[1], args[2:]
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", e.home, err)
	}
	switch sub {
	case "create":
		const synopsis = "api token create [--read-only] [--name LABEL]"
		fs := newFlags(e, "api token create")
		readOnly := fs.Bool("read-only", false, "the token may read and follow events, never change anything")
		name := fs.String("name", "", "a label to list and revoke it by")
		if _, err := parseArgs(e, fs, rest, 0, 0, synopsis); err != nil {
			return err
		}
		scope := api.ScopeFull
		if *readOnly {
			scope = api.ScopeReadOnly
		}
		if *name == api.DefaultTokenName {
			return usagef("%q names api.token; choose another --name", *name)
		}
		secret, tok, err := api.CreateToken(e.home, *name, scope)
		if errors.Is(err, api.ErrTokenExists) {
			return fmt.Errorf("a token is already named %q (hush api token list)", *name)
		}
		if err != nil {
			return err
		}
		// The secret alone on stdout, so TOKEN=$(hush api token create) works.
		fmt.Fprintln(e.stdout, secret)
		fmt.Fprintf(e.stderr, "Created %s API token %s (id %s). It is shown only this once: keep it now.\n",
			scope, displayTokenName(tok), tok.ID)
		fmt.Fprintln(e.stderr, "Use it as Authorization: Bearer TOKEN; revoke it with: hush api token revoke", tok.ID)
		return nil
	case "list":
		fs := newFlags(e, "api token list")
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parseArgs(e, fs, rest, 0, 0, "api token list [--json]"); err != nil {
			return err
		}
		list, err := api.ListTokens(e.home)
		if err != nil {
			return err
		}
		if *asJSON {
			raw, err := json.Marshal(list)
			if err != nil {
				return err
			}
			return printJSON(e.stdout, raw)
		}
		if len(list) == 0 {
			fmt.Fprintln(e.stdout, "No API tokens (the daemon makes api.token at its start).")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tCREATED")
		for _, t := range list {
			name := t.Name
			if t.Name == api.DefaultTokenName && t.ID == api.DefaultTokenName {
				name += " (" + api.TokenFile + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, oneLine(orDash(name)), t.Scope, t.Created.Local().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "revoke":
		args, err := parseArgs(e, newFlags(e, "api token revoke"), rest, 1, 1, "api token revoke NAME|ID")
		if err != nil {
			return err
		}
		tok, err := api.RevokeToken(e.home, args[0])
		if errors.Is(err, api.ErrUnknownToken) {
			return fmt.Errorf("no API token named %q or with that ID (hush api token list)", args[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Revoked API token %s (id %s): the daemon refuses it from now on.\n", displayTokenName(tok), tok.ID)
		if tok.ID == api.DefaultTokenName {
			fmt.Fprintf(e.stdout, "%s is deleted; the daemon makes a new one at its next start.\n", api.TokenFile)
		}
		return nil
	}
	return usagef("usage: hush %s", apiSynopsis)
}

func displayTokenName(t api.Token) string {
	if t.Name == "" {
		return "(no name)"
	}
	return fmt.Sprintf("%q", t.Name)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
