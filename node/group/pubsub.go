package group

import (
	"context"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/internal/gossip"
)

// PubSubOptions returns the GossipSub options group topics need; they are
// internal/gossip's, shared with relays that keep a group store.
func PubSubOptions() []pubsub.Option { return gossip.Options() }

// MessageIDFn is the GossipSub message ID: the SHA-256 of the data as a
// string, equal to the MsgID the engine computes.
func MessageIDFn(m *pb.Message) string { return gossip.MessageID(m) }

// Validator is a cheap GossipSub topic validator (RegisterTopicValidator)
// for group topics: on top of gossip.Anonymous (no libp2p author,
// sequence number or signature; size cap; topic prefix) it rejects data
// not framed as a sealed topic message (SealTopic) or an ephemeral one
// (SealEphemeral). The engine's OpenTopic and Open (OpenEphemeral) do
// the real checks.
func Validator(ctx context.Context, from peer.ID, m *pubsub.Message) bool {
	if !gossip.Anonymous(ctx, from, m) {
		return false
	}
	d := m.GetData()
	if IsEphemeral(d) {
		return len(d) >= TopicOverhead+minEphemeral && len(d) <= MaxTopicSize
	}
	return len(d) >= TopicOverhead+minWire && len(d) <= MaxTopicSize && d[0] == Version && (d[1] == kindTopicMsg || d[1] == kindTopicPadded)
}
