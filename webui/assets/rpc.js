// rpc.js: the browser's side of the API. call() runs a method of the
// daemon's API method table (POST /ui/rpc, JSON-RPC 2.0, with the
// session's CSRF token); events() follows the event stream.

let csrf = '';
let nextID = 1;

export class RPCError extends Error {
  constructor(e) {
    super(e.message);
    this.code = e.code;
    this.reason = e.data && e.data.reason;
  }
}

// start fetches the session's CSRF token; false when not logged in.
export async function start() {
  const r = await fetch('/ui/session', {credentials: 'same-origin'});
  if (!r.ok) return false;
  csrf = (await r.json()).csrf;
  return true;
}

export async function call(method, params) {
  const r = await fetch('/ui/rpc', {
    method: 'POST',
    credentials: 'same-origin',
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
    body: JSON.stringify({jsonrpc: '2.0', id: nextID++, method, params: params || {}}),
  });
  if (r.status === 401) throw new RPCError({code: 401, message: 'the session ended: run `hush ui` again'});
  const body = await r.json();
  if (body.error) throw new RPCError(body.error);
  return body.result;
}

// upload sends a file through POST /ui/upload, reporting progress
// (0..1) as the browser hands it to the daemon.
export function upload(query, file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', '/ui/upload?' + new URLSearchParams(query));
    x.setRequestHeader('X-CSRF-Token', csrf);
    x.setRequestHeader('Content-Type', 'application/octet-stream');
    x.upload.onprogress = e => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    x.onload = () => {
      let body = {};
      try { body = JSON.parse(x.responseText); } catch (e) { /* empty */ }
      if (x.status === 200) resolve(body);
      else reject(new Error(body.error || ('upload failed: HTTP ' + x.status)));
    };
    x.onerror = () => reject(new Error('upload failed'));
    x.send(file);
  });
}

export async function logout() {
  await fetch('/ui/logout', {method: 'POST', credentials: 'same-origin', headers: {'X-CSRF-Token': csrf}});
}

// events calls onEvent with each event of the stream; EventSource
// reconnects by itself with Last-Event-ID.
export function events(onEvent, onState) {
  const es = new EventSource('/ui/events');
  es.onmessage = m => {
    try { onEvent(JSON.parse(m.data)); } catch (e) { console.error(e); }
  };
  es.onopen = () => onState(true);
  es.onerror = () => onState(false);
  return es;
}

export function fileURL(id, download) {
  return '/ui/file?' + new URLSearchParams(download ? {id, download: '1'} : {id});
}

export function qrURL(text) {
  return '/ui/qr?' + new URLSearchParams({text});
}
