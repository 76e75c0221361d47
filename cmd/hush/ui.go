package main

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/hushnet/hush/api/apitypes"
)

// runUI is `hush ui [--print]`: it asks the daemon for a one-time login
// URL of the web UI (uiLogin) and opens it in a browser, or prints it
// when none can be started or with --print.
func runUI(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ui")
	printOnly := fs.Bool("print", false, "print the login URL instead of opening a browser")
	if _, err := parseArgs(e, fs, args, 0, 0, "ui [--print]"); err != nil {
		return err
	}
	var l apitypes.UILogin
	if err := call(ctx, e, "uiLogin", struct{}{}, &l); err != nil {
		return err
	}
	if !*printOnly {
		if err := openBrowser(l.URL); err == nil {
			fmt.Fprintln(e.stdout, "Opened the web UI in your browser (the login link works once, for 2 minutes).")
			return nil
		}
	}
	fmt.Fprintln(e.stdout, l.URL)
	fmt.Fprintln(e.stderr, "Open this link in a browser on this machine: it logs in once, within 2 minutes.")
	return nil
}

// openBrowser starts the desktop's URL opener and does not wait for the
// browser.
func openBrowser(url string) error {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return err
	}
	cmd := exec.Command(path, url)
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
