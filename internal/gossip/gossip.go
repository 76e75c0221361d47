// Package gossip holds the GossipSub settings every peer on a hush group
// topic must share — group members (node) and relays that keep a group
// store for their mailbox owners (relay): no libp2p signatures, no author
// or sequence number, content-hash message IDs, large queues, one message
// size cap and one topic name prefix.
package gossip

import (
	"context"
	"crypto/sha256"
	"strings"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// TopicPrefix starts every group topic name.
	TopicPrefix = "hush/g/"
	// MaxTopicLen caps a topic name (a group topic is the prefix and 32
	// hex digits).
	MaxTopicLen = 64
	// QueueSize is the per-peer outbound queue and validation queue size.
	// The library default of 32 drops 70–80% of a 1,000-message burst
	// (research perf.md §4); 4096 drops none.
	QueueSize = 4096
	// MaxMessageSize caps a message on a group topic: a little above the
	// largest sender-key message (64 KiB plus framing).
	MaxMessageSize = 72 << 10
	// TagVersion and TagKind are the first two bytes of every message on
	// a group topic: a group wire message sealed under its epoch's topic
	// key (docs/protocol/groups.md §16.7); MinMessageSize is the two
	// bytes, a 24-byte nonce, a 16-byte tag and one byte.
	// TagKindPadded replaces TagKind on a message padded to a bucket
	// length before sealing (docs/protocol/groups.md §16.11).
	// TagKindEphemeral marks an ephemeral message (a typing indicator,
	// docs/protocol/groups.md §16.12), which relays do not store.
	TagVersion       = 1
	TagKind          = 'T'
	TagKindPadded    = 'P'
	TagKindEphemeral = 'E'
	MinMessageSize   = 2 + 24 + 16 + 1
)

// Options returns the GossipSub options of group topics: StrictNoSign and
// WithNoAuthor, so a message does not name the peer that published it;
// content-hash message IDs (MessageID); QueueSize queues;
// MaxMessageSize; and flood publishing of a peer's own messages.
func Options() []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(MessageID),
		pubsub.WithPeerOutboundQueueSize(QueueSize),
		pubsub.WithValidateQueueSize(QueueSize),
		pubsub.WithMaxMessageSize(MaxMessageSize),
		// A member sends its own messages to every peer on the topic, not
		// only to its mesh (GossipSub v1.1 §"Flood publishing"; off by
		// default in go-libp2p-pubsub v0.17). A relay keeping a group store
		// is a passive subscriber that may sit outside the members' meshes
		// (its GRAFTs and PRUNEs follow the mesh's churn, and it is out of
		// it for a backoff after any PRUNE): without this it could miss
		// every message of a burst while the member it stores for is
		// away, and nothing repairs a relay's gaps (only members run
		// anti-entropy).
		pubsub.WithFloodPublish(true),
	}
}

// MessageID is the GossipSub message ID: the SHA-256 of the data, as a
// string.
func MessageID(m *pb.Message) string {
	h := sha256.Sum256(m.GetData())
	return string(h[:])
}

// ValidTopic reports whether name is a well-formed group topic name.
func ValidTopic(name string) bool {
	return len(name) <= MaxTopicLen && len(name) > len(TopicPrefix) && strings.HasPrefix(name, TopicPrefix)
}

// Anonymous is the part of topic validation every peer can do without
// keys: the message is on a group topic, framed as a sealed topic message
// (TagVersion, TagKind, TagKindPadded or TagKindEphemeral, size within bounds), and carries no libp2p
// author, sequence number, key or signature.
func Anonymous(_ context.Context, _ peer.ID, m *pubsub.Message) bool {
	if m == nil || m.Message == nil {
		return false
	}
	if len(m.GetFrom()) != 0 || len(m.GetSeqno()) != 0 || len(m.GetSignature()) != 0 || len(m.GetKey()) != 0 {
		return false
	}
	d := m.GetData()
	return ValidTopic(m.GetTopic()) && len(d) >= MinMessageSize && len(d) <= MaxMessageSize &&
		d[0] == TagVersion && (d[1] == TagKind || d[1] == TagKindPadded || d[1] == TagKindEphemeral)
}
