package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The chat's other controls in two browsers: the keyboard alone opens a
// chat and sends; typing shows at the other side and goes; a reply
// shows its quote there, an edit its new text and "edited", a delete
// for everyone leaves nothing of the text (quotes included); search
// finds an earlier message and opens it; the disappearing-messages timer
// set in one chat header shows in the other's, live.
func TestWebUIBrowserMessages(t *testing.T) {
	shots := artifacts(t)
	const earlier = "shall we bring pineapples to the picnic"
	alice, bob, a, b := browserPair(t, func(_, bob *user) { bob.mustRun("send", "alice", earlier, "--wait", "delivered") })

	// Keyboard only: Tab to bob's conversation, Enter opens it with the
	// focus in the composer, the keys type, Enter sends.
	a.waitJS("bob's conversation", `!!document.querySelector('#convs button[data-key="c:bob"]')`)
	a.tabTo(`#convs button[data-key="c:bob"]`)
	a.do("Enter opens the chat", chromedp.KeyEvent(kb.Enter))
	a.waitJS("the composer focused", `document.activeElement?.id === 'text' && document.querySelector('#chat-name').textContent === 'bob'`)
	const typed = "typed with keys only"
	a.do("type and Enter", chromedp.KeyEvent(typed+kb.Enter))
	var first message
	eventually(t, "the typed message at bob", func() bool {
		ms := dir(bob.messages("alice"), "in")
		if len(ms) == 1 && ms[0].Text == typed {
			first = ms[0]
			return true
		}
		return false
	})

	// Typing: alice types without sending; bob sees it, then sees it go
	// when she empties the box.
	b.do("bob opens alice's chat", click(`#convs button[data-key="c:alice"]`))
	b.waitJS("the typed message in bob's chat", anyText(`#messages li.msg.in .text`, typed))
	a.waitJS("read at alice", `document.querySelector(`+js(msgSel(first.ID)+` .state`)+`)?.textContent === 'read'`)
	a.do("alice types", chromedp.KeyEvent("hm"))
	b.waitJS("typing at bob", `document.querySelector('#typing').textContent === 'alice is typing…'`)
	a.do("alice empties the box", chromedp.KeyEvent(kb.Backspace+kb.Backspace))
	b.waitJS("typing gone at bob", `document.querySelector('#typing').textContent === ''`)

	// A call's answer that comes after the event stream has moved the
	// message on must not put it back: alice's page holds the answer to
	// her next send until the stream has shown that message read, then
	// lets it through; the message stays "read".
	a.eval(holdSendAnswer)
	a.do("alice sends, answer held", chromedp.KeyEvent("held answer"+kb.Enter))
	a.waitJS("the held answer let through", `window.heldAnswer === 'released'`)
	if st := a.eval(`[...document.querySelectorAll('#messages li.msg.out')].find(li => li.querySelector('.text').textContent === 'held answer').querySelector('.state').textContent`); st != "read" {
		t.Fatalf("after the late answer the message shows %q, want read", st)
	}

	// Reply: bob answers alice's message; the quote shows at alice.
	sel := msgSel(first.ID)
	b.do("bob replies", chromedp.Focus(sel), click(sel+` .actions button.reply`),
		chromedp.WaitVisible(`#context`), chromedp.SendKeys(`#text`, "a reply to that"+kb.Enter))
	a.waitJS("the reply with its quote at alice", `[...document.querySelectorAll('#messages li.msg.in')].some(li =>
		li.querySelector('.text')?.textContent === 'a reply to that' && li.querySelector('.quote')?.textContent === `+js(typed)+`)`)
	var reply message
	for _, m := range alice.messages("bob") {
		if m.Text == "a reply to that" {
			reply = m
		}
	}
	if reply.ReplyTo != first.ID {
		t.Fatalf("the reply at alice answers %q, want %q", reply.ReplyTo, first.ID)
	}

	// Edit: alice changes her message; bob sees the new text, "edited",
	// and the new text in his reply's quote.
	const edited = "typed with keys, then edited"
	a.do("alice edits", chromedp.Focus(sel), click(sel+` .actions button.edit`), chromedp.WaitVisible(`#context`),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)), chromedp.KeyEvent(edited+kb.Enter))
	b.waitJS("the edit at bob", `(li => li?.querySelector('.text').textContent === `+js(edited)+` && !!li.querySelector('.edited'))(document.querySelector(`+js(sel)+`))`)
	b.waitJS("the quote follows the edit", anyText(`#messages li.msg.out .quote`, edited))
	b.screenshot(shots, "chat-reply-edit")

	// Delete for everyone: nothing of the text is left at bob.
	a.do("alice deletes", chromedp.Focus(sel), click(sel+` .actions button.delete`))
	b.waitJS("the delete at bob", `document.querySelector(`+js(sel)+`)?.classList.contains('deleted')`)
	b.waitJS("no trace of the text at bob", `!document.querySelector('#messages').textContent.includes('then edited')`)
	for _, m := range bob.messages("alice") {
		if m.ID == first.ID && (!m.Deleted || m.Text != "") {
			t.Fatalf("deleted in alice's browser, but bob's daemon has %+v", m)
		}
	}

	// Search: a word of bob's first message finds it; the result opens
	// the chat at it.
	a.do("search", click(`#nav button[data-view="search"]`), chromedp.WaitVisible(`#search input`),
		chromedp.SendKeys(`#search input`, "pineapple"+kb.Enter))
	a.waitJS("the result", anyText(`#results li .result-text`, earlier))
	a.screenshot(shots, "search")
	hit := dir(alice.messages("bob"), "in")[0]
	a.do("open the result", click(`#results li[data-id="`+hit.ID+`"] button.result`))
	a.waitJS("the chat at the result", `document.querySelector('#chat-name')?.textContent === 'bob' && document.querySelector(`+js(msgSel(hit.ID))+`)?.classList.contains('found')`)

	// The timer: alice picks 1 hour in the chat header; bob's open chat
	// shows it, and both daemons have it.
	b.waitJS("bob's timer off", `document.querySelector('#timer')?.value === 'off'`)
	a.do("alice sets 1 hour", chromedp.Focus(`#timer`), chromedp.KeyEvent(kb.ArrowDown))
	a.waitJS("alice's header at 1 hour", `document.querySelector('#timer').dataset.seconds === '3600'`)
	b.waitJS("bob's header at 1 hour", `document.querySelector('#timer').value === '1h' && document.querySelector('#timer').dataset.seconds === '3600'`)
	for _, u := range []struct {
		u    *user
		peer string
	}{{alice, "bob"}, {bob, "alice"}} {
		if out := u.u.mustRun("timer", u.peer); !strings.Contains(out, "disappear 1h0m0s") {
			t.Fatalf("getTimer after the browser set it: %s", out)
		}
	}

	// Presence: both switch it on in Settings; each chat header and
	// alice's list show the other online; bob switches it off and alice's
	// header and list lose it.
	for _, x := range []*tab{a, b} {
		x.do("presence on", click(`#nav button[data-view="settings"]`), chromedp.WaitVisible(`#presence`), click(`#presence`))
		x.waitJS("the switch on", `document.querySelector('#presence').checked`)
		x.do("back to the chat", click(`#nav button[data-view="chats"]`))
	}
	a.waitJS("bob online in alice's header", `document.querySelector('#chat-sub')?.textContent === 'online'`)
	a.waitJS("bob online in alice's list", `!!document.querySelector('#convs button[data-key="c:bob"] .presence.online')`)
	b.waitJS("alice online in bob's header", `document.querySelector('#chat-sub')?.textContent === 'online'`)
	a.screenshot(shots, "chat-presence")
	b.do("bob's presence off", click(`#nav button[data-view="settings"]`), chromedp.WaitVisible(`#presence`), click(`#presence`))
	a.waitJS("bob's presence gone at alice", `document.querySelector('#chat-sub').textContent === '' && !document.querySelector('#convs .presence')`)
	t.Logf("screenshots in %s", shots)
}

// Groups, devices and the short link in two browsers. Alice (with a
// relay) sees her full link's dense QR with a note until she creates a
// short address, then the short one's; bob (no relay) keeps the note.
// Alice creates a group and invites bob, bob joins in his browser, a
// message goes each way, both member lists show both, bob leaves. Alice
// shows a device link code and its QR; a new home joins with it (CLI)
// and alice revokes it in the browser.
func TestWebUIBrowserGroups(t *testing.T) {
	chromium(t)
	shots := artifacts(t)
	r := newRelay(t, "")
	r.start()
	defer r.stop(syscall.SIGTERM)
	alice, _, a, b := browserPair(t, nil, r)

	// The short link's QR code.
	long := alice.link()
	a.do("alice's contacts", click(`#nav button[data-view="contacts"]`), chromedp.WaitVisible(`#own-qr`))
	a.waitJS("the long link's QR with a note", `document.querySelector('#own-qr').dataset.text === `+js(long)+` && !!document.querySelector('#qr-note')`)
	a.do("create a short address", click(`#create-address`))
	a.waitJS("the short link's QR", `document.querySelector('#own-qr')?.dataset.text.startsWith('HUSH:') && document.querySelector('#own-qr').complete && document.querySelector('#own-qr').naturalWidth > 0`)
	short := strings.Fields(alice.mustRun("address", "show"))[0]
	if got := a.eval(`document.querySelector('#own-qr').dataset.text`); got != short || a.eval(`String(!!document.querySelector('#qr-note'))`) != "false" {
		t.Fatalf("the QR code shows %q, the address is %q", got, short)
	}
	a.screenshot(shots, "contacts-short-link")
	b.do("bob's contacts", click(`#nav button[data-view="contacts"]`), chromedp.WaitVisible(`#own-qr`))
	b.waitJS("bob's note, no button", `!!document.querySelector('#qr-note') && !document.querySelector('#create-address')`)

	// A group: created and bob invited in alice's browser.
	a.do("alice's groups", click(`#nav button[data-view="groups"]`), chromedp.WaitVisible(`#new-group`),
		chromedp.SendKeys(`#new-group input[name="name"]`, "hikers"+kb.Enter))
	a.waitJS("the group at alice", anyText(`#groups > li > strong`, "hikers"))
	gid := a.eval(`[...document.querySelectorAll('#groups > li')].find(li => li.querySelector('strong').textContent === 'hikers').dataset.group`)
	g := `#groups > li[data-group="` + gid + `"]`
	a.do("invite bob", click(g+` button.invite`))
	a.waitJS("bob invited", anyText(g+` .members li[data-name="bob"] .member`, "bob (invited)"))
	b.do("bob's groups", click(`#nav button[data-view="groups"]`))
	b.waitJS("the invitation at bob", `!!document.querySelector(`+js(g+` button.accept`)+`)`)
	b.do("bob joins", click(g+` button.accept`))
	b.waitJS("bob a member", `!!document.querySelector(`+js(g+` button.open`)+`) && `+anyText(g+` .members li[data-name="alice"] .member`, "alice (admin)"))
	a.waitJS("bob a member at alice", anyText(g+` .members li[data-name="bob"] .member`, "bob"))

	// A message each way in the group chat.
	// (A chat is drawn twice as it opens; the keys go once it has the
	// focus in its composer.)
	inGroup := `document.querySelector('#chat-name')?.textContent === '# hikers' && document.activeElement?.id === 'text'`
	b.do("bob opens the group", click(g+` button.open`))
	b.waitJS("bob in the group chat", inGroup)
	b.do("bob writes", chromedp.KeyEvent("hello hikers"+kb.Enter))
	a.do("alice opens the group", click(g+` button.open`))
	a.waitJS("alice in the group chat", inGroup)
	a.waitJS("bob's message at alice", `[...document.querySelectorAll('#messages li.msg.in')].some(li =>
		li.querySelector('.sender')?.textContent === 'bob' && li.querySelector('.text')?.textContent === 'hello hikers')`)
	a.do("alice answers", chromedp.KeyEvent("welcome, bob"+kb.Enter))
	b.waitJS("alice's answer at bob", `[...document.querySelectorAll('#messages li.msg.in')].some(li =>
		li.querySelector('.sender')?.textContent === 'alice' && li.querySelector('.text')?.textContent === 'welcome, bob')`)
	// Group typing, read counts and the group's timer.
	b.do("bob types", click(`#text`), chromedp.KeyEvent("so"))
	a.waitJS("bob typing at alice", `document.querySelector('#typing').textContent === 'bob is typing…'`)
	b.do("bob empties the box", chromedp.KeyEvent(kb.Backspace+kb.Backspace))
	a.waitJS("bob's typing gone at alice", `document.querySelector('#typing').textContent === ''`)
	eventually(t, "bob's read receipt at alice's daemon", func() bool {
		return strings.Contains(alice.mustRun("group", "messages", "hikers", "--json"), `"read_by": [`)
	})
	a.waitJS("read by bob at alice", anyText(`#messages li.msg.out .read-count`, "read by 1 of 1"))
	b.do("bob sets the group's timer", chromedp.Focus(`#timer`), chromedp.KeyEvent(kb.ArrowDown))
	a.waitJS("the group's timer at alice", `document.querySelector('#timer').dataset.seconds === '3600'`)
	if out := alice.mustRun("timer", "hikers", "--group"); !strings.Contains(out, "disappear 1h0m0s") {
		t.Fatalf("the group's timer at alice: %s", out)
	}
	b.waitJS("both members in bob's header", `document.querySelector('#chat-sub').textContent === 'alice, you' || document.querySelector('#chat-sub').textContent === 'you, alice'`)
	b.screenshot(shots, "group-chat")

	// Bob leaves; alice's open group chat and daemon see him go.
	b.do("bob leaves", click(`#nav button[data-view="groups"]`), chromedp.WaitVisible(g+` button.leave`), click(g+` button.leave`))
	// A group left is no longer listed (listGroups, listConversations).
	b.waitJS("the group gone at bob", `!document.querySelector(`+js(g)+`) && !document.querySelector('#convs button[data-key="g:`+gid+`"]')`)
	a.waitJS("only alice in alice's header", `document.querySelector('#chat-sub').textContent === 'you'`)
	eventually(t, "bob gone from the group at alice", func() bool {
		gs := alice.groups()
		return len(gs) == 1 && len(gs[0].Members) == 1
	})

	// Devices: a link code and its QR, this device listed; a new home
	// joins with the code and is revoked from the browser.
	a.do("alice's devices", click(`#nav button[data-view="devices"]`), chromedp.WaitVisible(`#devices li`),
		click(`#link-device`))
	a.waitJS("the code and its QR", `document.querySelector('#link-code')?.textContent.startsWith('HUSH-LINK:') && document.querySelector('#link-offer img.qr').complete && document.querySelector('#link-offer img.qr').naturalWidth > 0`)
	a.waitJS("this device listed", anyText(`#devices li .badge.ok`, "this one"))
	a.screenshot(shots, "devices-link")
	code := a.eval(`document.querySelector('#link-code').textContent`)
	phone := &user{t: t, bin: alice.bin, home: filepath.Join(t.TempDir(), "home")}
	phone.mustRun("device", "join", code, "--name", "phone", "--no-passphrase")
	a.waitJS("the phone listed", anyText(`#devices li strong`, "phone"))
	var phoneID string
	for _, d := range alice.devices() {
		if !d.This {
			phoneID = d.ID
		}
	}
	a.do("revoke the phone", click(`#devices li[data-id="`+phoneID+`"] button.danger`))
	a.waitJS("the phone gone", `!document.querySelector('#devices li[data-id="`+phoneID+`"]')`)
	if ds := alice.devices(); len(ds) != 1 || !ds[0].This {
		t.Fatalf("revoked in the browser, but the devices are %+v", ds)
	}
	t.Logf("screenshots in %s", shots)
}

// holdSendAnswer wraps the page's fetch: the answer to the next send
// call is held until the page shows that message read (from the event
// stream), then handed over; window.heldAnswer says where it is
// ("released" once the composer is cleared, after the answer was used).
const holdSendAnswer = `(() => {
	const real = window.fetch;
	window.heldAnswer = 'armed';
	window.fetch = async (url, opts) => {
		const r = await real(url, opts);
		if (window.heldAnswer !== 'armed' || url !== '/ui/rpc' || !opts.body.includes('"method":"send"')) return r;
		window.heldAnswer = 'holding';
		const id = (await r.clone().json()).result.id;
		await new Promise(done => {
			const check = () => document.querySelector('#messages li[data-id="' + id + '"] .state')?.textContent === 'read' ? done() : setTimeout(check, 50);
			check();
		});
		// Released once the composer is cleared: the send's answer has
		// been taken by then.
		const cleared = () => document.querySelector('#text').value === '' ? (window.heldAnswer = 'released') : setTimeout(cleared, 50);
		setTimeout(cleared, 0);
		return r;
	};
	return 'ok';
})()`
