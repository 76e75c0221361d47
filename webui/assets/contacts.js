// contacts.js: the own link and its QR code, adding by link, message
// requests (accept, decline, block), contacts and their safety numbers.
import {h, fill, section} from './dom.js';
import * as rpc from './rpc.js';
import {guard, status, refreshConvs, refreshRequests, show, state} from './app.js';
import * as chat from './chat.js';

// qr draws a link's QR code. Short links (HUSH:…, ≤ 120 characters) make
// a small code a phone scans from a screen; a full hush:// link makes a
// version-40 code (177×177 modules) that it often cannot.
function qr(text, alt, id) {
  const size = text.length <= 200 ? 200 : 320;
  return h('img', {class: 'qr', id, src: rpc.qrURL(text.toUpperCase()), alt, width: size, height: size, 'data-text': text});
}

// invite makes a one-time invitation and shows its link and QR code.
async function invite() {
  const inv = await rpc.call('createInvite', {txnId: crypto.randomUUID()});
  fill(document.getElementById('invite'),
    h('p', {}, 'A one-time link: the first person who uses it becomes a contact at once, then it stops working.'),
    copyable('invite-link', inv.link), qr(inv.link, 'QR code of the one-time invitation', 'invite-qr'));
}

function copyable(id, text) {
  return h('div', {class: 'copy'},
    h('input', {type: 'text', id, readonly: true, value: text, 'aria-label': 'Link', onfocus: e => e.target.select()}),
    h('button', {type: 'button', onclick: () => guard(async () => { await navigator.clipboard.writeText(text); status('Copied'); })}, 'Copy'));
}

export async function render() {
  const [self, reqs, list] = await Promise.all([rpc.call('getSelf'), rpc.call('listRequests'), rpc.call('listContacts')]);
  state.self = self;
  let address = null;
  try { address = await rpc.call('getAddress'); } catch (e) { /* none yet */ }
  const main = document.getElementById('main');
  fill(main,
    h('h1', {}, 'Contacts'),
    reqs.length ? section('Message requests', h('ul', {id: 'requests', class: 'list'}, reqs.map(r =>
      h('li', {'data-name': r.name},
        h('strong', {}, r.name),
        h('ul', {class: 'req-msgs'}, r.messages.map(m => h('li', {class: 'text'}, m.text || (m.file && m.file.name) || ''))),
        h('div', {class: 'buttons'},
          h('button', {type: 'button', class: 'accept', onclick: () => guard(async () => {
            await rpc.call('acceptRequest', {name: r.name});
            status('Accepted ' + r.name);
            refreshRequests(); refreshConvs(); render();
          })}, 'Accept'),
          h('button', {type: 'button', class: 'decline', onclick: () => guard(async () => {
            await rpc.call('declineRequest', {name: r.name}); refreshRequests(); render();
          })}, 'Decline'),
          h('button', {type: 'button', class: 'block danger', onclick: () => guard(async () => {
            if (!confirm('Block ' + r.name + '? Nothing from this account will be shown.')) return;
            await rpc.call('blockRequest', {name: r.name}); refreshRequests(); render();
          })}, 'Block')))))) : null,
    section('Your link',
      h('p', {}, 'Give this link (or let someone scan the code) to be added as a contact.'),
      address ? [
        h('h3', {}, 'Short address'), copyable('own-address', address.link),
        qr(address.link, 'QR code of your short address', 'own-qr'),
        h('p', {class: 'muted'}, 'People who use it arrive as message requests.'),
      ] : [
        qr(self.link, 'QR code of your full link', 'own-qr'),
        h('p', {class: 'note', id: 'qr-note'}, 'This code holds your full link (' + self.link.length + ' characters): a dense code that a phone may fail to scan from a screen. ' +
          (self.relays > 0 ? 'Create a short address for a small one.' : 'With a relay configured, a short address makes a small one.')),
        self.relays > 0 ? h('button', {type: 'button', id: 'create-address', onclick: () => guard(async () => {
          await rpc.call('createAddress', {txnId: crypto.randomUUID()}); render();
        })}, 'Create a short address') : null,
      ],
      h('h3', {}, 'Full link'), copyable('own-link', self.link),
      h('p', {class: 'fingerprint'}, 'Account ', h('code', {}, self.fingerprint)),
      self.relays > 0 ? h('div', {},
        h('button', {type: 'button', id: 'create-invite', onclick: () => guard(invite)}, 'One-time invitation'),
        h('div', {id: 'invite'})) : null),
    section('Add a contact',
      h('form', {id: 'add-contact', class: 'form', onsubmit: e => { e.preventDefault(); guard(() => add(e.target)); }},
        h('label', {}, 'Name', h('input', {name: 'name', required: true, maxlength: 64, autocomplete: 'off'})),
        h('label', {}, 'Link', h('input', {name: 'link', required: true, placeholder: 'hush://… or HUSH:…', autocomplete: 'off'})),
        h('button', {type: 'submit'}, 'Add'))),
    section('Contacts', h('ul', {id: 'contacts', class: 'list'}, list.length === 0 ? h('li', {}, 'None yet.') : list.map(c =>
      h('li', {'data-name': c.name},
        h('strong', {}, c.name), c.verified ? h('span', {class: 'badge ok'}, 'verified') : null,
        c.key_changed ? h('span', {class: 'badge warn'}, 'key changed') : null,
        c.blocked ? h('span', {class: 'badge warn'}, 'blocked') : null,
        c.profile_name && c.profile_name !== c.name ? h('span', {class: 'muted'}, ' (' + c.profile_name + ')') : null,
        c.presence ? h('span', {class: 'presence' + (c.presence.online ? ' online' : '')}, ' ' + chat.presenceText(c.presence)) : null,
        h('div', {class: 'buttons'},
          h('button', {type: 'button', onclick: () => { show('chats'); chat.open({contact: c.name, name: c.name}); }}, 'Message'),
          h('button', {type: 'button', class: 'safety', onclick: () => guard(() => safety(c))}, 'Safety number'),
          c.blocked
            ? h('button', {type: 'button', onclick: () => guard(async () => { await rpc.call('unblockContact', {name: c.name}); render(); })}, 'Unblock')
            : h('button', {type: 'button', onclick: () => guard(async () => { if (confirm('Block ' + c.name + '?')) { await rpc.call('blockContact', {name: c.name}); render(); } })}, 'Block'),
          h('button', {type: 'button', class: 'danger', onclick: () => guard(async () => {
            if (!confirm('Remove ' + c.name + ' and the whole conversation?')) return;
            await rpc.call('removeContact', {name: c.name}); refreshConvs(); render();
          })}, 'Remove')),
        h('div', {class: 'safety-box', id: 'safety-' + c.name, hidden: true}))))));
}

async function add(form) {
  const name = form.name.value.trim(), link = form.link.value.trim();
  const c = await rpc.call('addContact', {name, link});
  status('Added ' + c.name + (c.key_changed ? ' (warning: the key changed)' : ''));
  form.reset();
  refreshConvs();
  render();
}

async function safety(c) {
  const box = document.getElementById('safety-' + c.name);
  if (!box.hidden) { box.hidden = true; return; }
  const r = await rpc.call('safetyNumber', {name: c.name});
  const blocks = r.safetyNumber.replace(/\s+/g, '').match(/.{1,5}/g) || [];
  fill(box,
    h('p', {}, 'Compare these numbers with ' + c.name + "'s screen, in person or on a call you trust."),
    h('p', {class: 'safety-number'}, blocks.map(b => h('code', {}, b))),
    c.verified ? h('p', {}, 'Verified.') : h('button', {type: 'button', onclick: () => guard(async () => {
      await rpc.call('verifyContact', {name: c.name}); status(c.name + ' is verified'); render();
    })}, 'They match: mark verified'));
  box.hidden = false;
}
