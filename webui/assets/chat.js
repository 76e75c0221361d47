// chat.js: one conversation, live: messages with their states, replies,
// reactions, edits, deletes, files and typing.
import {h, fill, fmtTime, fmtSize} from './dom.js';
import * as rpc from './rpc.js';
import {guard, status, refreshConvs} from './app.js';

let cur = null;       // {contact|group, name, key}
let msgs = new Map(); // id → message, in order
let replyTo = null;   // message being answered
let editing = null;   // message being edited
let typingTimer = 0, typingSent = 0, theirTyping = 0;

export function current() { return cur; }

const REACTIONS = ['👍', '❤️', '😂', '😮', '😢'];

export function render() {
  const main = document.getElementById('main');
  if (!cur) {
    fill(main, h('div', {class: 'empty-chat'}, h('p', {}, 'Pick a conversation.')));
    return;
  }
  const timer = h('select', {id: 'timer', 'aria-label': 'Disappearing messages', onchange: e => guard(async () => {
    const r = await rpc.call('setTimer', {...where(), timer: e.target.value});
    showTimer(r.seconds);
    status('Disappearing messages: ' + e.target.selectedOptions[0].textContent);
  })}, TIMERS.map(([v, l]) => h('option', {value: v}, l)));
  fill(main,
    h('header', {class: 'chat-head'},
      h('button', {type: 'button', class: 'back', 'aria-label': 'Back to the list', onclick: () => { cur = null; document.getElementById('app').dataset.chat = ''; render(); refreshConvs(); }}, '←'),
      h('div', {class: 'chat-title'},
        h('h1', {id: 'chat-name'}, (cur.group ? '# ' : '') + cur.name),
        h('span', {id: 'chat-sub', class: 'chat-sub'})),
      h('span', {id: 'typing', class: 'typing', 'aria-live': 'polite'}),
      timer),
    h('ol', {id: 'messages', class: 'messages', 'aria-label': 'Messages'}),
    h('form', {id: 'composer', class: 'composer', onsubmit: e => { e.preventDefault(); guard(sendText); }},
      h('div', {id: 'context', class: 'context', hidden: true}),
      h('div', {class: 'row'},
        h('label', {class: 'attach', title: 'Send a file'}, 'File', h('input', {type: 'file', id: 'file', 'aria-label': 'Send a file', onchange: e => guard(() => sendFile(e.target))})),
        h('textarea', {id: 'text', rows: 1, placeholder: 'Message', 'aria-label': 'Message', onkeydown: onKey, oninput: onInput}),
        h('button', {type: 'submit', id: 'send'}, 'Send')),
      h('progress', {id: 'upload', max: 1, value: 0, hidden: true})));
  const key = cur.key;
  guard(async () => {
    const t = await rpc.call('getTimer', where());
    if (cur && cur.key === key) showTimer(t.seconds);
  });
  if (cur.group) guard(members);
  else showPresence(presenceOf(cur.contact));
  for (const m of msgs.values()) place(m);
  scrollDown();
}

// where is the open conversation as API params: {contact} or {group}.
function where() { return cur.group ? {group: cur.group} : {contact: cur.contact}; }

// presence holds what the daemon said of each contact's presence
// (listConversations, then presence events), by name.
const presence = new Map();
export function presenceOf(name) { return presence.get(name); }

// setPresence takes a contact's presence (undefined: not known).
export function setPresence(name, p) {
  if (p) presence.set(name, p); else presence.delete(name);
  if (cur && cur.contact === name) showPresence(p);
}

// presenceText is "online", "last seen …" or '' (not known).
export function presenceText(p) {
  if (!p) return '';
  return p.online ? 'online' : (p.last_seen ? 'last seen ' + fmtTime(p.last_seen) : '');
}

function showPresence(p) {
  const sub = document.getElementById('chat-sub');
  if (!sub || !cur || cur.group) return;
  sub.textContent = presenceText(p);
  sub.classList.toggle('online', !!(p && p.online));
}

// members shows the group's members under its name.
async function members() {
  const id = cur.group;
  const g = (await rpc.call('listGroups')).find(g => g.id === id);
  const sub = document.getElementById('chat-sub');
  if (!g || !sub || !cur || cur.group !== id) return;
  const names = g.members.filter(m => !m.invited).map(m => m.me ? 'you' : m.name);
  sub.textContent = g.removed ? 'you left this group' : names.join(', ');
}

// TIMERS are the chat header's disappearing-messages choices.
const TIMERS = [['off', 'Timer off', 0], ['1h', '1 hour', 3600], ['1d', '1 day', 86400], ['1w', '1 week', 604800]];

// showTimer sets the header's timer to secs; a duration set elsewhere
// (the CLI takes any from 1m to 365d) gets an option of its own.
function showTimer(secs) {
  const sel = document.getElementById('timer');
  if (!sel) return;
  const known = TIMERS.find(t => t[2] === secs);
  sel.querySelector('option.other')?.remove();
  if (known) { sel.value = known[0]; } else {
    const v = secs % 86400 === 0 ? secs / 86400 + 'd' : secs % 3600 === 0 ? secs / 3600 + 'h' : Math.round(secs / 60) + 'm';
    sel.appendChild(h('option', {value: v, class: 'other'}, v));
    sel.value = v;
  }
  sel.dataset.seconds = String(secs);
  sel.classList.toggle('on', secs > 0);
}

// onTimer takes a timer event: the contact, this user or another of
// their devices changed the conversation's timer.
export function onTimer(t) {
  if (cur && t && (cur.group ? cur.group === t.group : cur.contact === t.contact)) showTimer(t.seconds);
}

// open shows a conversation; with c.focus (a message ID, from a search
// result) that message is scrolled to and marked.
export async function open(c) {
  stopTyping();
  cur = {contact: c.contact, group: c.group, name: c.name, key: c.group ? 'g:' + c.group : 'c:' + c.contact};
  document.getElementById('app').dataset.chat = 'open';
  replyTo = editing = null;
  msgs = new Map();
  render();
  await reload();
  const el = c.focus && document.querySelector(`#messages li[data-id="${CSS.escape(c.focus)}"]`);
  if (el) {
    el.classList.add('found');
    el.scrollIntoView({block: 'center'});
    el.focus();
  } else {
    document.getElementById('text').focus();
  }
}

export async function reload() {
  if (!cur) return;
  const list = cur.group
    ? await rpc.call('listGroupMessages', {group: cur.group, limit: 200})
    : await rpc.call('listMessages', {contact: cur.contact, limit: 200});
  msgs = new Map(list.map(m => [m.id, m]));
  const ol = document.getElementById('messages');
  if (ol) ol.replaceChildren();
  for (const m of msgs.values()) place(m);
  scrollDown();
  markRead();
  refreshConvs();
}

function markRead() {
  if (!cur || document.hidden) return;
  guard(() => rpc.call('markRead', cur.group ? {group: cur.group} : {contact: cur.contact}));
}
document.addEventListener('visibilitychange', () => { if (!document.hidden) { markRead(); refreshConvs(); } });

function mine(m) { return m.direction === 'out' || m.sender === 'me'; }

function belongs(m) {
  if (!cur || !m) return false;
  return cur.group ? m.group === cur.group : (!m.group && m.contact === cur.contact);
}

// onMessage takes a message or update event.
export function onMessage(m, type) {
  if (!belongs(m)) return;
  const fresh = !msgs.has(m.id);
  msgs.set(m.id, m);
  place(m);
  // Replies quote m: an edit or a delete shows in their quotes too.
  if (!fresh) for (const r of msgs.values()) if (r.reply_to === m.id) place(r);
  if (fresh) {
    scrollDown();
    if (!mine(m)) { markRead(); showTyping(false); }
  }
}

// sending holds the last upload or serve progress of this page's
// conversation's sent files, by message ID (file events).
const sending = new Map();

// onFile takes a file event: a sent file's upload to the relay, or a
// recipient's fetch from this device, shown under the file.
export function onFile(f) {
  if (!f || !f.id || (f.phase !== 'upload' && f.phase !== 'serve')) return;
  sending.set(f.id, f);
  const m = msgs.get(f.id);
  if (m) place(m);
}

// onTyping takes a typing event: a contact's, or a group member's
// (group: the group's ID; from: the member's name).
export function onTyping(from, typing, group) {
  if (!cur) return;
  if (group ? cur.group === group : cur.contact === from) showTyping(typing, from);
}

export function onGroup(g) {
  if (cur && g && cur.group === g.id) {
    cur.name = g.name;
    const n = document.getElementById('chat-name');
    if (n) n.textContent = '# ' + g.name;
    guard(members);
  }
}

function showTyping(on, who) {
  const el = document.getElementById('typing');
  if (!el) return;
  clearTimeout(theirTyping);
  el.textContent = on ? (who || cur.name) + ' is typing…' : '';
  if (on) theirTyping = setTimeout(() => { el.textContent = ''; }, 15000);
}

function scrollDown() {
  const ol = document.getElementById('messages');
  if (ol) ol.scrollTop = ol.scrollHeight;
}

// place draws m, replacing its element if it is there. An element that
// would look the same is left alone (an incoming message turning read
// changes nothing on screen), and one that had the focus (a keyboard
// user on its actions) hands it to the same control of the new one.
function place(m) {
  const ol = document.getElementById('messages');
  if (!ol) return;
  const el = draw(m);
  const old = ol.querySelector(`li[data-id="${CSS.escape(m.id)}"]`);
  if (!old) { ol.appendChild(el); return; }
  if (old.outerHTML === el.outerHTML) return;
  const focused = old.contains(document.activeElement) ? document.activeElement : null;
  const controls = li => [li, ...li.querySelectorAll('button, a[href], [tabindex]')];
  const at = focused ? controls(old).indexOf(focused) : -1;
  old.replaceWith(el);
  if (at >= 0) (controls(el)[at] || el).focus();
}

function draw(m) {
  const out = mine(m);
  const cls = ['msg', m.direction === 'system' ? 'system' : (out ? 'out' : 'in')];
  if (m.deleted) cls.push('deleted');
  const target = m.reply_to ? msgs.get(m.reply_to) : null;
  return h('li', {class: cls.join(' '), 'data-id': m.id, tabindex: 0},
    cur.group && !out && m.sender ? h('span', {class: 'sender'}, m.sender) : null,
    m.reply_to ? h('blockquote', {class: 'quote'}, target ? (target.deleted ? 'deleted message' : target.text || (target.file && target.file.name) || '') : 'an earlier message') : null,
    m.file && !m.deleted ? drawFile(m) : null,
    h('p', {class: 'text'}, m.deleted ? 'This message was deleted.' : m.text),
    h('div', {class: 'meta'},
      h('time', {datetime: m.time}, fmtTime(m.time)),
      m.edited && !m.deleted ? h('span', {class: 'edited'}, 'edited') : null,
      out && m.direction !== 'system' && !m.deleted ? stateOf(m) : null,
      m.error ? h('span', {class: 'error'}, m.error) : null),
    m.reactions ? h('div', {class: 'reactions'}, Object.entries(m.reactions).map(([e, who]) =>
      h('button', {type: 'button', class: 'reaction' + (who.includes('me') ? ' me' : ''), title: who.join(', '),
        onclick: () => guard(() => react(m, e))}, e + ' ' + who.length))) : null,
    m.deleted || m.direction === 'system' ? null : h('div', {class: 'actions'},
      h('button', {type: 'button', class: 'reply', onclick: () => startReply(m)}, 'Reply'),
      REACTIONS.map(e => h('button', {type: 'button', class: 'react', 'aria-label': 'React ' + e, onclick: () => guard(() => react(m, e))}, e)),
      out && !m.file ? h('button', {type: 'button', class: 'edit', onclick: () => startEdit(m)}, 'Edit') : null,
      out ? h('button', {type: 'button', class: 'delete', onclick: () => guard(() => recall(m))}, 'Delete') : null));
}

// stateOf is an outgoing message's state; in a group, once members have
// read it, "read by k of n" (their names in the title).
function stateOf(m) {
  if (m.read_of && m.read_by && m.read_by.length) {
    const by = m.read_by;
    return h('span', {class: 'state read-count' + (by.length === m.read_of ? ' state-read' : ''), title: by.length ? 'Read by ' + by.join(', ') : '',
      'aria-label': 'read by ' + by.length + ' of ' + m.read_of}, 'read by ' + by.length + ' of ' + m.read_of);
  }
  return h('span', {class: 'state state-' + m.state, 'aria-label': 'state ' + m.state}, m.state);
}

function drawFile(m) {
  const f = m.file;
  const done = f.state === 'done' || f.state === 'sent';
  const img = /^image\/(png|jpeg|gif|webp)$/.test(f.mime);
  let preview = null;
  if (img && done) preview = h('img', {class: 'thumb', src: rpc.fileURL(m.id), alt: f.name, loading: 'lazy'});
  else if (f.thumbnail) preview = h('img', {class: 'thumb', src: 'data:image/jpeg;base64,' + f.thumbnail, alt: f.name});
  return h('div', {class: 'file', 'data-state': f.state},
    preview,
    h('div', {class: 'file-line'},
      h('span', {class: 'file-name'}, f.name),
      h('span', {class: 'file-size'}, fmtSize(f.size)),
      done ? h('a', {class: 'download', href: rpc.fileURL(m.id, true), download: f.name}, 'Download') : null,
      f.state === 'offered' || f.state === 'failed' ? h('button', {type: 'button', class: 'fetch',
        onclick: () => guard(() => rpc.call('getFile', {id: m.id}))}, f.state === 'failed' ? 'Retry' : 'Download') : null),
    f.state === 'downloading' ? h('progress', {class: 'file-progress', max: f.size || 1, value: f.bytes || 0}) : null,
    sendProgress(m.id),
    f.state === 'failed' || f.state === 'expired' ? h('span', {class: 'error'}, f.state + (f.error ? ': ' + f.error : '')) : null);
}

// sendProgress shows how far a sent file's upload to the relay, or a
// recipient's fetch, has come (file events), until it is done.
function sendProgress(id) {
  const p = sending.get(id);
  if (!p) return null;
  const what = p.phase === 'upload' ? 'to the relay' : 'fetched';
  if (p.error) return h('span', {class: 'error file-send'}, what + ': ' + p.error);
  if (p.done) return h('span', {class: 'file-send'}, p.phase === 'upload' ? 'on the relay' : 'fetched');
  return h('span', {class: 'file-send'}, h('progress', {class: 'file-progress', max: p.total || 1, value: p.bytes || 0}), ' ' + what);
}

function setContext(text) {
  const el = document.getElementById('context');
  if (!text) { el.hidden = true; el.replaceChildren(); return; }
  el.hidden = false;
  fill(el, h('span', {}, text), h('button', {type: 'button', class: 'cancel', onclick: () => { replyTo = editing = null; setContext(''); }}, 'Cancel'));
}

function startReply(m) {
  replyTo = m; editing = null;
  setContext('Replying to: ' + (m.text || (m.file && m.file.name) || ''));
  document.getElementById('text').focus();
}

function startEdit(m) {
  editing = m; replyTo = null;
  setContext('Editing');
  const t = document.getElementById('text');
  t.value = m.text;
  t.focus();
}

function onKey(e) {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    guard(sendText);
  } else if (e.key === 'Escape') {
    replyTo = editing = null; setContext('');
  }
}

// onInput tells the contact we type, at most every 3 s, and that we
// stopped after 5 s without a key or when the box is emptied.
function onInput(e) {
  if (!cur) return;
  if (e && e.target.value === '') { stopTyping(); return; }
  const now = Date.now();
  if (now - typingSent > 3000) {
    typingSent = now;
    rpc.call('sendTyping', {...where(), typing: true}).catch(() => {});
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 5000);
}

function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSent && cur) rpc.call('sendTyping', {...where(), typing: false}).catch(() => {});
  typingSent = 0;
}

function txn() { return crypto.randomUUID(); }

async function send(p) {
  const m = cur.group ? await sendGroup({group: cur.group, txnId: txn(), ...p}) : await rpc.call('send', {to: cur.contact, txnId: txn(), ...p});
  fromCall(m);
  return m;
}

// fromCall shows a message a call answered, unless the event stream
// brought it already: the stream's copy may be newer (a state, a read
// receipt that came while the answer was on its way) and must not be
// put back to the answer's.
function fromCall(m) {
  if (!msgs.has(m.id)) onMessage(m, 'message');
}

// sendGroup sends to a group; right after joining, the group's keys may
// still be arriving (group_not_ready): it tries again, with the same
// txnId, for up to a minute rather than lose what the user typed.
async function sendGroup(p) {
  for (let i = 0; ; i++) {
    try {
      return await rpc.call('sendGroup', p);
    } catch (e) {
      if (e.reason !== 'group_not_ready' || i >= 60) throw e;
      status('Waiting for the group\'s keys…');
      await new Promise(r => setTimeout(r, 1000));
    }
  }
}

async function sendText() {
  const t = document.getElementById('text');
  const text = t.value;
  if (!text.trim()) return;
  if (editing) await send({kind: 'edit', target: editing.id, text});
  else if (replyTo) await send({kind: 'reply', target: replyTo.id, text});
  else await send({text});
  t.value = '';
  replyTo = editing = null;
  setContext('');
  stopTyping();
  refreshConvs();
}

async function react(m, emoji) {
  const had = m.reactions && m.reactions[emoji] && m.reactions[emoji].includes('me');
  await send({kind: 'reaction', target: m.id, text: emoji, remove: had || undefined});
}

async function recall(m) {
  if (!confirm('Delete this message for everyone?')) return;
  await rpc.call('deleteMessage', cur.group ? {group: cur.group, id: m.id} : {contact: cur.contact, id: m.id});
}

async function sendFile(input) {
  const f = input.files[0];
  if (!f) return;
  const bar = document.getElementById('upload');
  bar.hidden = false;
  bar.value = 0;
  try {
    const q = cur.group ? {group: cur.group} : {to: cur.contact};
    q.name = f.name;
    const caption = document.getElementById('text').value.trim();
    if (caption) q.caption = caption;
    q.txnId = txn();
    const m = await rpc.upload(q, f, p => { bar.value = p; });
    document.getElementById('text').value = '';
    fromCall(m);
    status('Sent ' + f.name);
  } finally {
    bar.hidden = true;
    input.value = '';
  }
}

