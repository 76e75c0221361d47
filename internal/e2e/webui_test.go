package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// chromium finds a Chromium to drive; without one the browser tests
// skip, unless HUSH_REQUIRE_BROWSER is set (CI sets it): then they fail.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("HUSH_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium on PATH, and HUSH_REQUIRE_BROWSER is set (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium); set HUSH_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

// artifacts is where the browser tests write their screenshots:
// $HUSH_ARTIFACTS, else internal/e2e/artifacts (ignored by git).
func artifacts(t *testing.T) string {
	dir := os.Getenv("HUSH_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir = filepath.Join(dir, "webui")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tab is one user's browser session (its own browser context: cookies
// and storage of its own).
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string
}

func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// click clicks the element sel matches once it is visible. The page
// redraws lists and messages on events: a node found by the query can be
// replaced before the mouse reaches it ("Could not find node with given
// id"), and then the click is tried again on the new one.
func click(sel string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		var err error
		for range 20 {
			if _, err = chromedp.Click(sel)(ctx, tg); err == nil || !strings.Contains(err.Error(), "Could not find node") {
				return chromedp.Void{}, err
			}
		}
		return chromedp.Void{}, err
	}
}

// waitJS waits until the JavaScript expression is truthy (a DOM
// condition), for up to a minute.
func (b *tab) waitJS(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(time.Minute), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("%s: waiting for %s: %v", b.name, what, err)
	}
}

func (b *tab) eval(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, expr, err)
	}
	return v
}

func (b *tab) screenshot(dir, name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// startBrowser starts a headless chromium for the test; each openUI is a
// browser context of it.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Headless, chromedp.DisableGPU, chromedp.Flag("disable-dev-shm-usage", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return browserCtx
}

// openUI logs u's browser in with `hush ui --print`. The page's confirm
// dialogs (delete, leave, revoke) are answered OK.
func openUI(t *testing.T, parent context.Context, u *user, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	url := strings.TrimSpace(u.mustRun("ui", "--print"))
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("hush ui --print: %q", url)
	}
	b := &tab{t: t, ctx: ctx, name: name}
	// A failed test leaves what each browser showed.
	t.Cleanup(func() {
		if t.Failed() {
			if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
				os.WriteFile(filepath.Join(artifacts(t), "failed-"+t.Name()+"-"+name+".png"), png, 0o644)
			}
		}
	})
	b.do("login", chromedp.EmulateViewport(1200, 800), chromedp.Navigate(url),
		chromedp.WaitVisible(`#app[data-state="ready"]`))
	// The login link is spent: a second browser gets nowhere with it.
	return b
}

// browserPair starts alice (with relays, if any) and bob, befriends
// them and logs each into a browser of one chromium. before runs
// between the befriending and the browsers (nil: nothing). The daemons
// stop when the test ends, after the browsers' failure screenshots.
func browserPair(t *testing.T, before func(alice, bob *user), relays ...*relayProc) (alice, bob *user, a, b *tab) {
	t.Helper()
	chromium(t)
	alice, bob = newUser(t, "alice"), newUser(t, "bob")
	if len(relays) > 0 {
		alice.startWithRelays(relays...)
		alice.waitMailboxes(len(relays))
	} else {
		alice.start()
	}
	t.Cleanup(alice.stop)
	bob.start()
	t.Cleanup(bob.stop)
	logsOnFailure(t, alice, bob)
	befriend(t, alice, bob, "alice", "bob")
	if before != nil {
		before(alice, bob)
	}
	browserCtx := startBrowser(t)
	return alice, bob, openUI(t, browserCtx, alice, "alice"), openUI(t, browserCtx, bob, "bob")
}

// logsOnFailure logs the daemons' output when the test fails.
func logsOnFailure(t *testing.T, us ...*user) {
	t.Cleanup(func() {
		if t.Failed() {
			for _, u := range us {
				t.Logf("daemon %s:\n%s", u.home, u.log)
			}
		}
	})
}

// testPNG writes a small PNG of its own pixels.
func testPNG(t *testing.T, path string) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 120, 80))
	for y := range 80 {
		for x := range 120 {
			img.Set(x, y, color.RGBA{uint8(x * 2), uint8(y * 3), uint8(x ^ y), 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(path)
	return b
}

func js(s string) string { b, _ := json.Marshal(s); return string(b) }

// anyText is a JavaScript condition: an element matching sel has exactly
// text as its text.
func anyText(sel, text string) string {
	return `[...document.querySelectorAll(` + js(sel) + `)].some(e => e.textContent === ` + js(text) + `)`
}

// msgSel is the CSS selector of message id's element in the open chat.
func msgSel(id string) string { return `#messages li[data-id="` + id + `"]` }

// tabTo presses Tab until the focused element matches sel (at most 60
// times): the keyboard path a user without a mouse takes.
func (b *tab) tabTo(sel string) {
	b.t.Helper()
	for range 60 {
		if b.eval(`String(!!document.activeElement?.matches(`+js(sel)+`))`) == "true" {
			return
		}
		b.do("Tab", chromedp.KeyEvent(kb.Tab))
	}
	b.t.Fatalf("%s: Tab never reached %s", b.name, sel)
}

// The web UI end to end: two daemons, two browser sessions. A message
// typed in alice's browser appears in bob's and alice sees it turn
// "read"; message text that looks like HTML stays text; a file sent from
// alice's browser downloads in bob's with the same SHA-256; a stranger's
// request shows up in alice's browser and is accepted there.
func TestWebUIBrowser(t *testing.T) {
	shots := artifacts(t)
	alice, _, a, b := browserPair(t, nil)

	// (1) alice writes to bob from the contacts page, Enter sends.
	const evil = `<img src=x onerror="document.title='pwned'"> hello bob`
	a.do("open bob's chat", click(`#nav button[data-view="contacts"]`),
		chromedp.WaitVisible(`#contacts li[data-name="bob"]`),
		click(`#contacts li[data-name="bob"] .buttons button`),
		chromedp.WaitVisible(`#text`),
		chromedp.SendKeys(`#text`, evil+"\r"))
	a.waitJS("the message in alice's chat", anyText(`#messages li.msg.out .text`, evil))

	b.waitJS("an unread count at bob", `document.querySelector('#convs button[data-key="c:alice"] .unread')?.textContent === '1'`)
	b.screenshot(shots, "list")
	b.do("open alice's chat", click(`#convs button[data-key="c:alice"]`))
	b.waitJS("the message in bob's chat", anyText(`#messages li.msg.in .text`, evil))
	if n := b.eval(`String(document.querySelectorAll('#messages img:not(.thumb)').length) + document.title`); n != "0hush" {
		t.Fatalf("message text became markup in bob's page: %q", n)
	}
	a.waitJS("the state read at alice", `document.querySelector('#messages li.msg.out .state')?.textContent === 'read'`)
	b.waitJS("the unread count gone at bob", `!document.querySelector('#convs button[data-key="c:alice"] .unread')`)

	// Live: bob answers; alice sees it without reloading, and reacts.
	b.do("bob answers", chromedp.SendKeys(`#text`, "hi alice\r"))
	a.waitJS("bob's answer at alice", anyText(`#messages li.msg.in .text`, "hi alice"))
	a.do("alice reacts", chromedp.Focus(`#messages li.msg.in`), click(`#messages li.msg.in .actions button.react`))
	b.waitJS("the reaction at bob", `document.querySelector('#messages li.msg.out .reactions .reaction')?.textContent.startsWith('👍')`)

	// (2) a file from alice's browser, downloaded in bob's.
	dir := t.TempDir()
	src := filepath.Join(dir, "picture.png")
	want := sha256.Sum256(testPNG(t, src))
	a.do("alice attaches a file", chromedp.SetUploadFiles(`#file`, []string{src}))
	a.waitJS("the file sent at alice", `document.querySelector('#messages li.msg.out .file .file-name')?.textContent === 'picture.png'`)
	b.waitJS("the file downloaded at bob", `document.querySelector('#messages li.msg.in .file[data-state="done"] a.download')`)
	a.waitJS("alice's page shows bob fetched it (file events)", `document.querySelector('#messages li.msg.out .file .file-send')?.textContent === 'fetched'`)
	b.waitJS("the picture inline at bob", `[...document.querySelectorAll('#messages li.msg.in img.thumb')].some(i => i.complete && i.naturalWidth === 120)`)
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(b.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: chromedp.FromContext(b.ctx).BrowserContextID,
		DownloadPath: downloads,
	}); err != nil {
		t.Fatal(err)
	}
	b.screenshot(shots, "chat-file")
	b.do("bob downloads", click(`#messages li.msg.in .file a.download`))
	got := filepath.Join(downloads, "picture.png")
	eventually(t, "the download in bob's directory", func() bool {
		data, err := os.ReadFile(got)
		return err == nil && sha256.Sum256(data) == want
	})
	a.screenshot(shots, "chat")
	// The phone's width: the chat fills the screen, the list is one tap back.
	b.do("phone width", chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile))
	b.waitJS("the chat at 375 px", `document.querySelector('#composer').getBoundingClientRect().right <= 375`)
	b.screenshot(shots, "phone-chat")
	b.do("back to the list", click(`.chat-head .back`))
	b.waitJS("the list at 375 px", `document.querySelector('#convs').offsetParent !== null`)
	b.screenshot(shots, "phone-list")

	// (3) a stranger writes to alice; the request shows up and is accepted.
	carol := newUser(t, "carol")
	carol.start()
	defer carol.stop()
	carol.mustRun("contact", "add", "alice", alice.link())
	carol.mustRun("send", "alice", "hello from a stranger")
	a.waitJS("the request count at alice", `document.querySelector('#req-count')?.textContent === '1'`)
	a.do("alice's contacts", click(`#nav button[data-view="contacts"]`))
	a.waitJS("the request at alice", anyText(`#requests li .text`, "hello from a stranger"))
	a.waitJS("the link's QR code", `document.querySelector('img.qr')?.complete && document.querySelector('img.qr').naturalWidth > 0`)
	a.screenshot(shots, "contacts")
	name := a.eval(`document.querySelector('#requests > li').dataset.name`)
	a.do("accept", click(`#requests li button.accept`))
	a.waitJS("carol among alice's contacts", `!!document.querySelector('#contacts li[data-name=`+js(name)+`]')`)
	if out := alice.mustRun("contact", "list"); !strings.Contains(out, name) {
		t.Fatalf("accepted in the browser, but the contacts are:\n%s", out)
	}
	a.do("files", click(`#nav button[data-view="files"]`), chromedp.WaitVisible(`#files li[data-id]`))
	a.screenshot(shots, "files")
	a.do("settings", click(`#nav button[data-view="settings"]`), chromedp.WaitVisible(`#presence`))
	a.screenshot(shots, "settings")
	a.do("presence on", click(`#presence`))
	eventually(t, "presence on from the browser", func() bool { return strings.Contains(alice.mustRun("presence"), "presence is on") })
	a.do("devices", click(`#nav button[data-view="devices"]`), chromedp.WaitVisible(`#devices li`))
	a.screenshot(shots, "devices")
	t.Logf("screenshots in %s", shots)
}
