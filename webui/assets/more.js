// more.js: files, devices, search and settings.
import {h, fill, section, fmtTime, fmtSize} from './dom.js';
import * as rpc from './rpc.js';
import {guard, status, show, state} from './app.js';
import * as chat from './chat.js';

export async function files() {
  const contacts = await rpc.call('listContacts');
  const lists = await Promise.all(contacts.map(c => rpc.call('listFiles', {contact: c.name}).catch(() => [])));
  const rows = [];
  contacts.forEach((c, i) => lists[i].forEach(m => rows.push({c, m})));
  rows.sort((a, b) => new Date(b.m.time) - new Date(a.m.time));
  fill(document.getElementById('main'),
    h('h1', {}, 'Files'),
    h('p', {class: 'muted'}, 'Send a file from a chat (File). Files up to the auto-download limit arrive by themselves.'),
    h('ul', {id: 'files', class: 'list files'}, rows.length === 0 ? h('li', {}, 'No files yet.') : rows.map(({c, m}) => {
      const f = m.file, done = f.state === 'done' || f.state === 'sent';
      return h('li', {'data-id': m.id},
        /^image\/(png|jpeg|gif|webp)$/.test(f.mime) && done ? h('img', {class: 'thumb small', src: rpc.fileURL(m.id), alt: ''}) : null,
        h('strong', {}, f.name), ' ', h('span', {class: 'muted'}, fmtSize(f.size) + ' · ' + (m.direction === 'out' ? 'to ' : 'from ') + c.name + ' · ' + fmtTime(m.time)),
        f.state === 'downloading' ? h('progress', {max: f.size || 1, value: f.bytes || 0}) : null,
        h('div', {class: 'buttons'},
          done ? h('a', {class: 'download', href: rpc.fileURL(m.id, true), download: f.name}, 'Download') : null,
          f.state === 'offered' || f.state === 'failed' ? h('button', {type: 'button', onclick: () => guard(() => rpc.call('getFile', {id: m.id}))}, 'Fetch') : null,
          h('button', {type: 'button', onclick: () => { show('chats'); chat.open({contact: c.name, name: c.name}); }}, 'Open chat')));
    })));
}

export async function devices() {
  const list = await rpc.call('listDevices');
  const main = document.getElementById('main');
  fill(main,
    h('h1', {}, 'Devices'),
    section('Link a new device', h('p', {}, 'On the new device run ', h('code', {}, 'hush device join CODE'), ' with the code shown here.'),
      h('button', {type: 'button', id: 'link-device', onclick: () => guard(async () => {
        const o = await rpc.call('linkDevice');
        fill(document.getElementById('link-offer'),
          h('p', {}, 'Code (one use, until ' + fmtTime(o.expires) + '):'),
          h('code', {class: 'code', id: 'link-code'}, o.code),
          h('img', {class: 'qr', src: rpc.qrURL(o.code), alt: 'QR code of the link code', width: 200, height: 200}));
      })}, 'Show a link code'),
      h('div', {id: 'link-offer'})),
    section('This account\'s devices', h('ul', {id: 'devices', class: 'list'}, list.map(d => h('li', {'data-id': d.id},
      h('strong', {}, d.name || 'unnamed device'), d.this ? h('span', {class: 'badge ok'}, 'this one') : null,
      h('span', {class: 'muted'}, ' ' + d.id.slice(0, 8) + ' · added ' + fmtTime(d.added)),
      d.this ? null : h('button', {type: 'button', class: 'danger', onclick: () => guard(async () => {
        if (!confirm('Revoke ' + (d.name || d.id) + '? It stops being part of this account.')) return;
        await rpc.call('revokeDevice', {id: d.id}); status('Revoked'); devices();
      })}, 'Revoke'))))));
}

// groupName is a group's name from the conversation list (a group with
// no message yet is not there: its ID's start then).
function groupName(id) {
  const c = state.convs.find(c => c.group === id);
  return c ? c.name : id.slice(0, 8);
}

// marked is text with the starts of its words that match one of words
// (as search matches them: a word or a word's start, any case) in <mark>.
function marked(text, words) {
  return text.split(/(\s+)/).map(w => {
    const n = words.reduce((best, q) => w.toLowerCase().startsWith(q) ? Math.max(best, q.length) : best, 0);
    return n ? [h('mark', {}, w.slice(0, n)), w.slice(n)] : w;
  });
}

export async function search() {
  const main = document.getElementById('main');
  const results = h('ul', {id: 'results', class: 'list results', 'aria-label': 'Results'});
  fill(main, h('h1', {}, 'Search'),
    h('form', {id: 'search', class: 'form', role: 'search', onsubmit: e => { e.preventDefault(); guard(async () => {
      const found = await rpc.call('search', {text: e.target.q.value});
      const words = e.target.q.value.toLowerCase().split(/\s+/).filter(Boolean);
      fill(results, found.length === 0 ? h('li', {class: 'none'}, 'Nothing found.') : found.map(m => {
        const where = m.group ? {group: m.group, name: groupName(m.group)} : {contact: m.contact, name: m.contact};
        const who = m.direction === 'out' || m.sender === 'me' ? 'you' : (m.group ? m.sender : '');
        return h('li', {'data-id': m.id},
          h('button', {type: 'button', class: 'result', onclick: () => { show('chats'); chat.open({...where, focus: m.id}); }},
            h('span', {class: 'muted'}, [(m.group ? '# ' : '') + where.name, who, fmtTime(m.time)].filter(Boolean).join(' · ') + ': '),
            h('span', {class: 'result-text'}, marked(m.text || (m.file && m.file.name) || '', words))));
      }));
    }); }},
    h('input', {name: 'q', type: 'search', required: true, placeholder: 'Words to find', 'aria-label': 'Search'}),
    h('button', {type: 'submit'}, 'Search')), results);
  main.querySelector('input').focus();
}

// settingControls are the settings page's controls; each is a few lines
// over an API method.
const settingControls = [
  {label: 'Send read receipts', kind: 'toggle', id: 'read-receipts', initial: true,
    set: on => rpc.call('setReadReceipts', {enabled: on})},
  {label: 'Share online / last seen with contacts who share theirs', kind: 'toggle', id: 'presence',
    initial: () => state.presence, set: on => rpc.call('setPresence', {on})},
  {label: 'Profile name', kind: 'text', id: 'profile-name', initial: () => state.self && state.self.name,
    set: v => rpc.call('setProfile', {name: v})},
];

function control(c) {
  const initial = typeof c.initial === 'function' ? c.initial() : c.initial;
  if (c.kind === 'toggle') {
    return h('label', {class: 'toggle'}, h('input', {type: 'checkbox', id: c.id, checked: initial, onchange: e => guard(async () => {
      await c.set(e.target.checked); status(c.label + ': ' + (e.target.checked ? 'on' : 'off'));
    })}), c.label);
  }
  return h('form', {class: 'form inline', onsubmit: e => { e.preventDefault(); guard(async () => {
    await c.set(e.target.v.value); status(c.label + ' saved');
  }); }}, h('label', {}, c.label, h('input', {name: 'v', id: c.id, value: initial || ''})), h('button', {type: 'submit'}, 'Save'));
}

export async function settings() {
  const contacts = await rpc.call('listContacts');
  state.presence = (await rpc.call('getPresence')).on;
  const timers = await Promise.all(contacts.map(c => rpc.call('getTimer', {contact: c.name}).catch(() => ({seconds: 0}))));
  const opts = [['off', 'Off', 0], ['1h', '1 hour', 3600], ['1d', '1 day', 86400], ['1w', '1 week', 604800]];
  fill(document.getElementById('main'),
    h('h1', {}, 'Settings'),
    section('This device', settingControls.map(control)),
    section('Disappearing messages', contacts.length === 0 ? h('p', {}, 'No contacts yet.') : h('ul', {class: 'list', id: 'timers'}, contacts.map((c, i) =>
      h('li', {}, h('label', {}, c.name + ' ', h('select', {'data-contact': c.name, onchange: e => guard(async () => {
        await rpc.call('setTimer', {contact: c.name, timer: e.target.value}); status('Timer for ' + c.name + ': ' + e.target.selectedOptions[0].textContent);
      })}, opts.map(([v, l, s]) => h('option', {value: v, selected: timers[i].seconds === s}, l)))))))),
    section('Session', h('button', {type: 'button', id: 'logout', onclick: () => guard(async () => {
      await rpc.logout(); location.reload();
    })}, 'Log out of this browser')));
}
