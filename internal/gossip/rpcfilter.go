package gossip

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// The GossipSub RPC fields the frame filter reads (go-libp2p-pubsub
// pb/rpc.proto). Every other field passes untouched.
const (
	rpcSubscriptions = 1  // repeated SubOpts
	rpcPublish       = 2  // repeated Message
	rpcControl       = 3  // ControlMessage
	rpcPartial       = 10 // PartialMessagesExtension

	subOptsSubscribe = 1 // bool
	subOptsTopic     = 2 // string

	messageTopic = 4 // string

	controlIHave = 1 // ControlIHave
	controlGraft = 3 // ControlGraft
	controlPrune = 4 // ControlPrune

	// topicID is field 1 of ControlIHave, ControlGraft, ControlPrune and
	// PartialMessagesExtension.
	entryTopicID = 1
)

// entryKind is the kind of topic entry the frame filter asks about.
type entryKind int

const (
	entrySubscribe entryKind = iota
	entryUnsubscribe
	entryMessage // a publish message, IHAVE, GRAFT, PRUNE or partial message
)

// filterRPC removes from an RPC body the entries for which allow reports
// false. It returns the body itself and true when nothing was removed. A
// body that does not parse is dropped whole (it comes from the local
// router, so this does not happen).
func filterRPC(body []byte, allow func(entryKind, []byte) bool) ([]byte, bool) {
	var out []byte // nil until the first removal
	removed := false
	for rest := body; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, false
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			return nil, false
		}
		field := rest[:n+m]
		rest = rest[n+m:]
		keep, repl := true, field
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(field[n:])
			switch num {
			case rpcSubscriptions:
				sub, topic, ok := readSubOpts(v)
				if !ok {
					return nil, false
				}
				kind := entryUnsubscribe
				if sub {
					kind = entrySubscribe
				}
				keep = allow(kind, topic)
			case rpcPublish:
				keep = allow(entryMessage, bytesField(v, messageTopic))
			case rpcPartial:
				keep = allow(entryMessage, bytesField(v, entryTopicID))
			case rpcControl:
				ctl, same, ok := filterControl(v, allow)
				if !ok {
					return nil, false
				}
				if !same {
					keep = len(ctl) > 0
					repl = protowire.AppendBytes(protowire.AppendTag(nil, num, typ), ctl)
				}
			}
		}
		if !keep || len(repl) != len(field) || out != nil {
			if out == nil {
				out = append(make([]byte, 0, len(body)), body[:len(body)-len(rest)-len(field)]...)
			}
			removed = true
			if keep {
				out = append(out, repl...)
			}
		}
	}
	if !removed {
		return body, true
	}
	return out, false
}

// filterControl removes the IHAVE, GRAFT and PRUNE entries allow refuses
// from a ControlMessage.
func filterControl(body []byte, allow func(entryKind, []byte) bool) ([]byte, bool, bool) {
	var out []byte
	changed := false
	for rest := body; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, false, false
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			return nil, false, false
		}
		field := rest[:n+m]
		rest = rest[n+m:]
		keep := true
		if typ == protowire.BytesType && (num == controlIHave || num == controlGraft || num == controlPrune) {
			v, _ := protowire.ConsumeBytes(field[n:])
			keep = allow(entryMessage, bytesField(v, entryTopicID))
		}
		if !keep && !changed {
			out = append(make([]byte, 0, len(body)), body[:len(body)-len(rest)-len(field)]...)
			changed = true
		}
		if keep && changed {
			out = append(out, field...)
		}
	}
	if !changed {
		return body, true, true
	}
	return out, false, true
}

// readSubOpts reads a SubOpts: subscribe and topic.
func readSubOpts(b []byte) (sub bool, topic []byte, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, nil, false
		}
		switch {
		case num == subOptsSubscribe && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b[n:])
			if m < 0 {
				return false, nil, false
			}
			sub, n = v != 0, n+m
		case num == subOptsTopic && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b[n:])
			if m < 0 {
				return false, nil, false
			}
			topic, n = v, n+m
		default:
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return false, nil, false
			}
			n += m
		}
		b = b[n:]
	}
	return sub, topic, true
}

// bytesField returns the last value of string field num in a message
// body, or nil (which no allow function accepts as a group topic). It
// points into b.
func bytesField(b []byte, num protowire.Number) []byte {
	var s []byte
	for len(b) > 0 {
		f, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		m := protowire.ConsumeFieldValue(f, typ, b[n:])
		if m < 0 {
			return nil
		}
		if f == num && typ == protowire.BytesType {
			s, _ = protowire.ConsumeBytes(b[n:])
		}
		b = b[n+m:]
	}
	return s
}

// appendSubOpts appends one RPC subscriptions entry.
func appendSubOpts(b []byte, topic string, subscribe bool) []byte {
	var so []byte
	so = protowire.AppendTag(so, subOptsSubscribe, protowire.VarintType)
	so = protowire.AppendVarint(so, protowire.EncodeBool(subscribe))
	so = protowire.AppendTag(so, subOptsTopic, protowire.BytesType)
	so = protowire.AppendString(so, topic)
	b = protowire.AppendTag(b, rpcSubscriptions, protowire.BytesType)
	return protowire.AppendBytes(b, so)
}

// consumeUvarint reads a frame's length prefix; n is 0 if b holds no
// complete one.
func consumeUvarint(b []byte) (uint64, int) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0
	}
	return v, n
}

func appendUvarint(b []byte, v uint64) []byte { return protowire.AppendVarint(b, v) }
