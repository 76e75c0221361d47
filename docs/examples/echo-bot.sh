#!/bin/sh
# echo-bot.sh answers every 1:1 message with its own text, through the
# daemon's HTTP API (docs/API.md, "Write a bot"). Needs curl and jq.
#   HUSH_HOME   the daemon's home (default ~/.local/share/hush)
#   HUSH_TOKEN  a full API token (default: the home's api.token)
#   AFTER       resume after this event seq (default 0: new events only)
set -eu
home=${HUSH_HOME:-$HOME/.local/share/hush}
url=http://$(cat "$home/api.addr")/api/v1
auth="Authorization: Bearer ${HUSH_TOKEN:-$(cat "$home/api.token")}"
curl -sfN -H "$auth" -H "Last-Event-ID: ${AFTER:-0}" "$url/events" |
  sed -un 's/^data: //p' |
  jq -c --unbuffered 'select(.type == "message" and .message.direction == "in"
      and .message.group == null and .message.text != "")
    | {jsonrpc: "2.0", id: 1, method: "send", params: {to: .message.contact,
       text: .message.text, txnId: ("echo-" + .message.id)}}' |
  while IFS= read -r req; do
    curl -sf -H "$auth" -d "$req" "$url/rpc" >/dev/null
  done
