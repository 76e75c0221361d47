package group

// The topic layer (docs/protocol/groups.md §16.11): wire messages sealed
// for their epoch's topic, and opened from it.

import (
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// SealTopic prepares a wire message for its topic: it returns the topic
// of the message's epoch and the message sealed under that epoch's topic
// key (§16.7), padded to a bucket length (§16.11): version ‖ 'P' ‖ nonce
// ‖ XChaCha20-Poly1305(key, wire ‖ 0x80 ‖ 0x00*, ad = topic). Peers on the topic that are not members — relays keeping a
// group store, peers that learned the topic name from a subscription —
// see neither the group ID nor the sender's device in the clear header.
func (e *Engine) SealTopic(wire []byte) (topic string, data []byte, err error) {
	h, err := parseWireHeader(wire)
	if err != nil {
		return "", nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.ro.epochs) - 1; i >= 0; i-- {
		ep := &e.ro.epochs[i]
		if ep.n != h.epoch {
			continue
		}
		if s, ok := e.secrets[ep.key]; ok {
			k := e.topicKeysLocked(ep.n, s)
			topic = k.name
			data = append([]byte{Version, kindTopicPadded}, suite.Seal(k.key, padWire(wire), []byte(topic))...)
			return topic, data, nil
		}
	}
	return "", nil, fmt.Errorf("%w: no secret for epoch %d", ErrEpoch, h.epoch)
}

// OpenTopic reverses SealTopic with the topic key of any epoch this
// device holds a secret for (newest first) and returns the wire message,
// which Open then checks: ErrMalformed for bad framing, ErrWrongGroup if
// no topic key of this group opens it.
func (e *Engine) OpenTopic(data []byte) ([]byte, error) {
	if len(data) < TopicOverhead || len(data) > MaxTopicSize || data[0] != Version || (data[1] != kindTopicMsg && data[1] != kindTopicPadded) {
		return nil, fmt.Errorf("%w: topic message framing", ErrMalformed)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.ro.epochs) - 1; i >= 0; i-- {
		ep := &e.ro.epochs[i]
		s, ok := e.secrets[ep.key]
		if !ok {
			continue
		}
		k := e.topicKeysLocked(ep.n, s)
		if wire, err := suite.Open(k.key, data[2:], []byte(k.name)); err == nil {
			if data[1] == kindTopicMsg {
				return wire, nil
			}
			if wire, ok := unpadWire(wire); ok {
				return wire, nil
			}
			return nil, fmt.Errorf("%w: topic message padding", ErrMalformed)
		}
	}
	return nil, fmt.Errorf("%w: not sealed for a topic of this group", ErrWrongGroup)
}

// transportKey is an epoch's topic key: HKDF-SHA-256(secret, info =
// label ‖ group ID ‖ epoch), 32 bytes.
func transportKey(id GroupID, epoch uint64, secret [32]byte) []byte {
	w := codec.NewWriter(len(labelTransport) + 40)
	w.Fixed([]byte(labelTransport))
	w.Fixed(id[:])
	w.U64(epoch)
	return suite.HKDF(secret[:], nil, string(w.Bytes()), suite.KeySize)
}
