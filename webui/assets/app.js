// app.js: the shell: navigation, the conversation list with unread
// counts, and the event stream that keeps every view live.
import {h, fill, fmtTime} from './dom.js';
import * as rpc from './rpc.js';
import * as chat from './chat.js';
import * as contacts from './contacts.js';
import * as groups from './groups.js';
import * as more from './more.js';

const views = {
  chats: () => chat.render(),
  contacts: () => contacts.render(),
  groups: () => groups.render(),
  files: () => more.files(),
  devices: () => more.devices(),
  search: () => more.search(),
  settings: () => more.settings(),
};

export const state = {view: 'chats', convs: [], self: null};

export function status(text, isError) {
  const el = document.getElementById('status');
  el.textContent = text || '';
  el.classList.toggle('error', !!isError);
  if (text) setTimeout(() => { if (el.textContent === text) el.textContent = ''; }, 6000);
}

// guard runs an async action and shows its error.
export async function guard(fn) {
  try { return await fn(); } catch (e) { status(e.message, true); return undefined; }
}

export function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll('#nav button')) {
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  document.getElementById('app').dataset.view = view;
  guard(views[view]);
}

function convKey(c) { return c.group ? 'g:' + c.group : 'c:' + c.contact; }

let convTimer = 0;
export function refreshConvs() {
  clearTimeout(convTimer);
  convTimer = setTimeout(() => guard(loadConvs), 50);
}

async function loadConvs() {
  state.convs = await rpc.call('listConversations');
  for (const c of state.convs) if (c.contact) chat.setPresence(c.contact, c.presence);
  const cur = chat.current();
  const list = document.getElementById('convs');
  fill(list, state.convs.length === 0 ? h('li', {class: 'empty'}, 'No conversations yet. Add a contact under Contacts.') : null,
    state.convs.map(c => h('li', {},
      h('button', {type: 'button', class: 'conv' + (cur && cur.key === convKey(c) ? ' active' : ''), 'data-key': convKey(c),
        onclick: () => { show('chats'); chat.open(c.contact ? {contact: c.contact, name: c.name} : {group: c.group, name: c.name}); }},
      h('span', {class: 'conv-name'}, (c.group ? '# ' : '') + c.name,
        c.presence ? h('span', {class: 'presence' + (c.presence.online ? ' online' : ''), title: chat.presenceText(c.presence)}, c.presence.online ? ' ● online' : '') : null),
      c.unread > 0 ? h('span', {class: 'unread', 'aria-label': c.unread + ' unread'}, c.unread >= 100 ? '99+' : String(c.unread)) : null,
      h('span', {class: 'conv-last'}, c.last ? (c.last.direction === 'out' ? 'You: ' : (c.last.sender ? c.last.sender + ': ' : '')) + (c.last.deleted ? 'deleted' : c.last.preview) : ''),
      h('span', {class: 'conv-time'}, c.last ? fmtTime(c.last.time) : '')))));
}

let reqTimer = 0;
export function refreshRequests() {
  clearTimeout(reqTimer);
  reqTimer = setTimeout(() => guard(async () => {
    const rs = await rpc.call('listRequests');
    const b = document.getElementById('req-count');
    b.hidden = rs.length === 0;
    b.textContent = String(rs.length);
    b.setAttribute('aria-label', rs.length + ' requests');
    if (state.view === 'contacts') contacts.render();
  }), 50);
}

function onEvent(ev) {
  switch (ev.type) {
    case 'message': case 'update':
      chat.onMessage(ev.message, ev.type);
      if (state.view === 'files' && ev.message && ev.message.file) more.files();
      refreshConvs();
      break;
    case 'file':
      chat.onFile(ev.file);
      break;
    case 'typing':
      chat.onTyping(ev.from, ev.typing, ev.group_id);
      break;
    case 'presence':
      chat.setPresence(ev.from, ev.presence);
      refreshConvs();
      if (state.view === 'contacts') contacts.render();
      break;
    case 'request':
      refreshRequests();
      break;
    case 'contact':
      refreshConvs();
      if (state.view === 'contacts') contacts.render();
      break;
    case 'group':
      refreshConvs();
      chat.onGroup(ev.group);
      if (state.view === 'groups') groups.render();
      break;
    case 'timer':
      chat.onTimer(ev.timer);
      if (state.view === 'settings') more.settings();
      break;
    case 'device':
      if (state.view === 'devices') more.devices();
      break;
    case 'gap':
      refreshConvs(); refreshRequests(); chat.reload();
      break;
  }
}

async function main() {
  for (const b of document.querySelectorAll('#nav button')) b.addEventListener('click', () => show(b.dataset.view));
  if (!await rpc.start()) {
    fill(document.getElementById('main'), h('div', {class: 'card login'},
      h('h1', {}, 'Not logged in'),
      h('p', {}, 'Run ', h('code', {}, 'hush ui'), ' in a terminal: it opens this page with a one-time login link.')));
    document.getElementById('app').dataset.state = 'logged-out';
    return;
  }
  state.self = await rpc.call('getSelf');
  document.getElementById('app').dataset.state = 'ready';
  rpc.events(onEvent, up => document.getElementById('app').classList.toggle('offline', !up));
  await loadConvs();
  refreshRequests();
  show('chats');
}

main();
