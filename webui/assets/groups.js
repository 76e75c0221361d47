// groups.js: groups: create, invitations, members, invite, leave.
import {h, fill, section} from './dom.js';
import * as rpc from './rpc.js';
import {guard, status, refreshConvs, show} from './app.js';
import * as chat from './chat.js';

export async function render() {
  const [groups, contacts] = await Promise.all([rpc.call('listGroups'), rpc.call('listContacts')]);
  fill(document.getElementById('main'),
    h('h1', {}, 'Groups'),
    section('New group', h('form', {id: 'new-group', class: 'form', onsubmit: e => { e.preventDefault(); guard(async () => {
      const g = await rpc.call('createGroup', {name: e.target.name.value.trim(), txnId: crypto.randomUUID()});
      status('Created ' + g.name); e.target.reset(); refreshConvs(); render();
    }); }},
    h('label', {}, 'Name', h('input', {name: 'name', required: true, maxlength: 64})),
    h('button', {type: 'submit'}, 'Create'))),
    section('Your groups', h('ul', {id: 'groups', class: 'list'}, groups.length === 0 ? h('li', {}, 'None yet.') : groups.map(g => group(g, contacts)))));
}

function group(g, contacts) {
  const members = g.members.filter(m => !m.me);
  const invitable = contacts.filter(c => !g.members.some(m => m.account === c.account));
  return h('li', {'data-group': g.id},
    h('strong', {}, g.name), g.pending ? h('span', {class: 'badge'}, 'invitation') : null,
    g.removed ? h('span', {class: 'badge warn'}, 'left') : null, g.admin ? h('span', {class: 'badge ok'}, 'admin') : null,
    h('ul', {class: 'members', 'aria-label': 'Members'}, g.members.map(m => h('li', {'data-name': m.me ? '' : m.name},
      h('span', {class: 'member'}, (m.me ? 'you' : m.name) + (m.admin ? ' (admin)' : '') + (m.invited ? ' (invited)' : '')),
      g.admin && !m.me ? h('button', {type: 'button', class: 'small', onclick: () => guard(async () => {
        if (confirm('Remove ' + m.name + ' from ' + g.name + '?')) { await rpc.call('removeFromGroup', {group: g.id, member: m.name}); render(); }
      })}, 'Remove') : null))),
    h('div', {class: 'buttons'},
      g.pending ? [
        h('button', {type: 'button', class: 'accept', onclick: () => guard(async () => { await rpc.call('acceptGroup', {group: g.id}); refreshConvs(); render(); })}, 'Join'),
        h('button', {type: 'button', class: 'decline', onclick: () => guard(async () => { await rpc.call('declineGroup', {group: g.id}); render(); })}, 'Decline'),
      ] : [
        h('button', {type: 'button', class: 'open', onclick: () => { show('chats'); chat.open({group: g.id, name: g.name}); }}, 'Open'),
        g.admin && invitable.length ? h('form', {class: 'inline', onsubmit: e => { e.preventDefault(); guard(async () => {
          await rpc.call('inviteToGroup', {group: g.id, contact: e.target.contact.value}); status('Invited'); render();
        }); }}, h('select', {name: 'contact', 'aria-label': 'Contact to invite'}, invitable.map(c => h('option', {value: c.name}, c.name))),
        h('button', {type: 'submit', class: 'invite'}, 'Invite')) : null,
        g.removed ? null : h('button', {type: 'button', class: 'leave danger', onclick: () => guard(async () => {
          if (confirm('Leave ' + g.name + '?')) { await rpc.call('leaveGroup', {group: g.id}); refreshConvs(); render(); }
        })}, 'Leave'),
      ]),
    members.length === 0 && !g.pending ? h('p', {class: 'muted'}, 'Only you so far.') : null);
}
