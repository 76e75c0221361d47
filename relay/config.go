package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hushnet/hush/crypto/envelope"
)

// Creation modes (Config.Creation).
const (
	CreationOpen   = "open"
	CreationInvite = "invite"
	CreationClosed = "closed"
)

// Defaults of Config (docs/RELAY.md "Limits").
const (
	DefaultMaxEnvelope     = envelope.MaxEnvelopeSize
	DefaultMaxMessages     = 1000
	DefaultMaxMailboxBytes = 64 << 20
	DefaultTTL             = 14 * 24 * time.Hour
	DefaultMaxStoreBytes   = 4 << 30
	DefaultPeerRate        = 200
	DefaultPeerBurst       = 1000
	DefaultIPRate          = 500
	DefaultIPBurst         = 2000
	DefaultMaxOneTime      = MaxOneTime
	DefaultRequestTimeout  = 30 * time.Second
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultExpiryInterval  = time.Minute
	DefaultOwnerGrace      = time.Hour
	DefaultMaxTopics       = 10000
	DefaultMaxTopicsPerIP  = 8 * MaxWatchTopics
	challengeLifetime      = 30 * time.Second
	clockSkew              = 60 * time.Second
)

// Defaults of the limits on what strangers may take (docs/RELIABILITY.md
// "Relays"): mailbox creation in the open mode, group-store filings per
// publisher, frame bytes being read.
const (
	DefaultMaxMailboxesPerIP   = 64
	DefaultMaxMailboxesPerPeer = 4
	DefaultCreateIPPerHour     = 60
	DefaultCreateIPBurst       = 16
	DefaultTopicFileRate       = 1
	DefaultTopicFileBurst      = 300
	DefaultTopicFileIPRate     = 2
	DefaultTopicFileIPBurst    = 600
	DefaultMaxFrameBytes       = 64 << 20
	DefaultMaxFrameBytesPerIP  = 16 << 20
)

// Defaults of the blob store (docs/RELAY.md "Blob store",
// docs/protocol/files.md §19.5).
const (
	DefaultMaxBlob          = 1<<30 + 32<<20 // the blob of a 1 GiB file (STREAM, then Padmé: files.md §19.5)
	DefaultBlobTTL          = 7 * 24 * time.Hour
	DefaultBlobQuotaPerPeer = 2 << 30
	DefaultBlobQuotaPerIP   = 4 << 30
	DefaultBlobStoreBytes   = 20 << 30
)

// Defaults of the link store (docs/RELAY.md "Link store",
// docs/protocol/addresses.md §20.3).
const (
	DefaultLinkTTL            = 90 * 24 * time.Hour
	DefaultLinkMaxRecords     = 100000
	DefaultLinkRecordsPerPeer = 16
	DefaultLinkRecordsPerIP   = 256
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("336h", "30s"); a bare number is read as seconds.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n float64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("relay: duration: want a string like \"336h\" or seconds")
		}
		*d = Duration(n * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("relay: duration: %v", err)
	}
	*d = Duration(v)
	return nil
}

// Config configures a Server. The zero value is a working relay with the
// defaults of docs/RELAY.md "Limits". It is also the JSON config file of
// hush-relay (field names as below). For the rates (PeerRate, IPRate,
// CreateIPPerHour, TopicFileRate, TopicFileIPRate) a negative value turns
// the limit off; any other negative field is refused (Check).
type Config struct {
	// MaxEnvelope caps the size of one deposited envelope in bytes.
	// Default 256 KiB (envelope.MaxEnvelopeSize, the largest bucket); it
	// can only be lowered.
	MaxEnvelope int `json:"max_envelope,omitempty"`
	// MaxMessages is the per-mailbox quota of stored messages.
	// Default 1,000.
	MaxMessages int `json:"max_messages,omitempty"`
	// MaxMailboxBytes is the per-mailbox quota of stored envelope bytes.
	// Default 64 MiB.
	MaxMailboxBytes int64 `json:"max_mailbox_bytes,omitempty"`
	// TTL is how long an unacknowledged envelope is kept. Default 14 days.
	TTL Duration `json:"ttl,omitempty"`
	// MaxStoreBytes caps the envelope bytes stored in the whole relay;
	// past it deposits get Full. Default 4 GiB.
	MaxStoreBytes int64 `json:"max_store_bytes,omitempty"`
	// PeerRate and PeerBurst are the token bucket for deposits (and other
	// requests) per remote peer: tokens per second and bucket size.
	// Default 200/s, burst 1,000; a negative rate: no per-peer limit.
	PeerRate  float64 `json:"peer_rate,omitempty"`
	PeerBurst int     `json:"peer_burst,omitempty"`
	// IPRate and IPBurst are the same per remote IP address.
	// Default 500/s, burst 2,000; a negative rate: no per-IP limit.
	IPRate  float64 `json:"ip_rate,omitempty"`
	IPBurst int     `json:"ip_burst,omitempty"`
	// Creation is the mailbox creation mode: "open" (anyone), "invite"
	// (a Create must carry one of InviteTokens) or "closed" (none).
	// Default "open".
	Creation string `json:"creation,omitempty"`
	// InviteTokens are the tokens accepted in "invite" mode. Default none.
	InviteTokens []string `json:"invite_tokens,omitempty"`
	// PoWBits is the number of leading zero bits the creation proof of
	// work must have (docs/RELAY.md "Create"). Default 0 (none).
	PoWBits int `json:"pow_bits,omitempty"`
	// MaxOneTime is the number of one-time prekey bundles kept per
	// mailbox; extra bundles in a PutPrekeys are refused with Quota.
	// Default 100.
	MaxOneTime int `json:"max_one_time,omitempty"`
	// RequestTimeout is the deadline of each request on a stream.
	// Default 30 s.
	RequestTimeout Duration `json:"request_timeout,omitempty"`
	// IdleTimeout closes an owner subscription that sent nothing (no Ack,
	// no Ping) for this long. Default 5 min.
	IdleTimeout Duration `json:"idle_timeout,omitempty"`
	// ExpiryInterval is how often expired envelopes are removed.
	// Default 1 min.
	ExpiryInterval Duration `json:"expiry_interval,omitempty"`
	// NoCircuitRelay turns the circuit relay v2 service off. Default
	// false: the service runs, open only to mailbox owners.
	NoCircuitRelay bool `json:"no_circuit_relay,omitempty"`
	// OwnerGrace is how long a peer may still reserve a circuit-relay slot
	// after its last owner subscription ended. Default 1 h.
	OwnerGrace Duration `json:"owner_grace,omitempty"`
	// NoGroupStore turns the group store off: Watch requests are answered
	// Unsupported and the relay joins no GossipSub topic. Default false:
	// the relay watches group topics for its mailbox owners and files
	// their messages into the owners' mailboxes (docs/RELAY.md "Group
	// store").
	NoGroupStore bool `json:"no_group_store,omitempty"`
	// MaxTopics caps the distinct group topics the relay watches for all
	// its mailboxes together; a Watch that would pass it gets Full.
	// Default 10,000. (One mailbox watches at most MaxWatchTopics.)
	MaxTopics int `json:"max_topics,omitempty"`
	// MaxTopicsPerIP caps the topics the mailboxes whose watch sets came
	// from one network (an IPv4 address, an IPv6 /64) may watch together;
	// a Watch that would pass it gets Quota. Mailboxes are free in the
	// open mode, so without it one network's throwaway mailboxes could
	// take the relay's whole MaxTopics. Default 512 (eight devices
	// watching the most a device may, MaxWatchTopics, each).
	MaxTopicsPerIP int `json:"max_topics_per_ip,omitempty"`
	// MaxMailboxesPerIP caps, in the open creation mode, the mailboxes
	// created from one network (an IPv4 address, an IPv6 /64) that the
	// relay still holds; a Create past it gets Quota. The count is kept
	// in memory only: the relay stores no peer or address of a creator,
	// so mailboxes loaded at a restart count towards no network. Default
	// 64: a device holds one mailbox per relay, so this is a household or
	// an office behind one address; behind a carrier-grade NAT, raise it.
	MaxMailboxesPerIP int `json:"max_mailboxes_per_ip,omitempty"`
	// MaxMailboxesPerPeer is the same per remote peer. Default 4 (one,
	// with room for Creates whose answers were lost).
	MaxMailboxesPerPeer int `json:"max_mailboxes_per_peer,omitempty"`
	// CreateIPPerHour and CreateIPBurst are the token bucket of mailbox
	// creations per network in the open mode: creations per hour and
	// bucket size; past it a Create gets RateLimited. Default 60 an
	// hour, burst 16; a negative rate: no limit.
	CreateIPPerHour float64 `json:"create_ip_per_hour,omitempty"`
	CreateIPBurst   int     `json:"create_ip_burst,omitempty"`
	// TopicFileRate and TopicFileBurst are the token bucket of group-store
	// filings per publishing peer (the GossipSub peer a topic message came
	// from): one token files one message into one offline owner's mailbox
	// (pushes to online owners cost nothing); past it the message is not
	// filed for the remaining mailboxes. Anyone may publish on a watched
	// topic, so without it one stranger could fill the topic share of
	// every watching mailbox. Default 1/s, burst 300; a negative rate: no
	// limit.
	TopicFileRate  float64 `json:"topic_file_rate,omitempty"`
	TopicFileBurst int     `json:"topic_file_burst,omitempty"`
	// TopicFileIPRate and TopicFileIPBurst are the same per network of the
	// publishing peer. Default 2/s, burst 600 (below the topic share of a
	// default mailbox, 750); a negative rate: no limit.
	TopicFileIPRate  float64 `json:"topic_file_ip_rate,omitempty"`
	TopicFileIPBurst int     `json:"topic_file_ip_burst,omitempty"`
	// MaxFrameBytes caps the bytes of request frames the relay holds at
	// once, for all streams together, from a frame's first buffer until
	// its request is answered; a stream whose frame needs more waits up
	// to a second, then is reset. Default 64 MiB; at least the largest
	// frame of either protocol (a blob write, about 1 MiB).
	MaxFrameBytes int64 `json:"max_frame_bytes,omitempty"`
	// MaxFrameBytesPerIP is the same per network, so one network cannot
	// take the whole MaxFrameBytes. Default 16 MiB; at least the largest
	// frame, as MaxFrameBytes.
	MaxFrameBytesPerIP int64 `json:"max_frame_bytes_per_ip,omitempty"`
	// NoBlobStore turns the blob store (/hush/blob/1) off. Default false:
	// the store runs when BlobDir is set.
	NoBlobStore bool `json:"no_blob_store,omitempty"`
	// BlobDir is the directory of the blob store's files (ciphertext
	// only, one file per blob; their metadata is in the relay's store).
	// hush-relay sets <data_dir>/blobs; a Server given none runs no blob
	// store.
	BlobDir string `json:"blob_dir,omitempty"`
	// MaxBlob caps one blob in bytes. Default 1 GiB + 32 MiB, the blob
	// of a 1 GiB file.
	MaxBlob int64 `json:"max_blob,omitempty"`
	// BlobTTL is how long a blob is kept after its put, uploaded or not.
	// Default 7 days.
	BlobTTL Duration `json:"blob_ttl,omitempty"`
	// BlobQuotaPerPeer caps the bytes of live blobs (put and not yet
	// deleted, each counted at its full size, at least 64 KiB) one
	// uploading peer holds. Default 2 GiB.
	BlobQuotaPerPeer int64 `json:"blob_quota_per_peer,omitempty"`
	// BlobQuotaPerIP is the same per uploading network (an IPv4 address,
	// an IPv6 /64), counted over all its peers: an uploader may use a
	// new identity for every upload, so the per-peer quota alone binds
	// nobody. A put past either quota gets BlobOverQuota. Default 4 GiB
	// (two peers' quotas), or BlobQuotaPerPeer if that is more; it may
	// not be set below BlobQuotaPerPeer (Check). Behind a carrier-grade
	// NAT, raise it. Which network put a blob is kept with it (a cut
	// hash of the network, see docs/RELAY.md "Blob store"), so the count
	// holds across restarts.
	BlobQuotaPerIP int64 `json:"blob_quota_per_ip,omitempty"`
	// BlobStoreBytes caps the bytes of all live blobs, counted as for
	// BlobQuotaPerPeer. Default 20 GiB.
	BlobStoreBytes int64 `json:"blob_store_bytes,omitempty"`
	// NoLinkStore turns the link store (/hush/link/1) off. Default false:
	// the store runs, its records in the relay's store.
	NoLinkStore bool `json:"no_link_store,omitempty"`
	// LinkTTL is how long a link record is kept after its last put.
	// Default 90 days (an owner's node puts its records again at least
	// every 7 days).
	LinkTTL Duration `json:"link_ttl,omitempty"`
	// LinkMaxRecords caps the live link records of the whole relay; a put
	// of a new record past it gets LinkOverQuota. Default 100,000 (each
	// at most MaxLinkRecord, 64 KiB + 64, in the relay's store).
	LinkMaxRecords int `json:"link_max_records,omitempty"`
	// LinkRecordsPerPeer caps the live link records put first by one
	// peer. Default 16.
	LinkRecordsPerPeer int `json:"link_records_per_peer,omitempty"`
	// LinkRecordsPerIP is the same per network (an IPv4 address, an IPv6
	// /64), over all its peers: a node puts its records from a new
	// identity every time, so the per-peer cap alone binds nobody.
	// Default 256, or LinkRecordsPerPeer if that is more; it may not be
	// set below LinkRecordsPerPeer (Check). The network is kept with its
	// records (a cut hash, as for blobs), so the count holds across
	// restarts.
	LinkRecordsPerIP int `json:"link_records_per_ip,omitempty"`
	// Push points the relay at a push bridge that wakes mailbox owners'
	// phones (docs/RELAY.md "Wake-ups"). Default none.
	Push PushConfig `json:"push,omitempty"`

	// Logger receives service events, never identifiers (mailbox, deposit
	// or message IDs, peer IDs, addresses). Default: discarded.
	Logger *slog.Logger `json:"-"`
	// Metrics receives counters and gauges. Default: none.
	Metrics Metrics `json:"-"`
	// Now is the clock. Default time.Now; tests inject their own.
	Now func() time.Time `json:"-"`
}

// Check reports the first field of c that no relay can run with: a
// negative size, count or duration (only the rates may be negative,
// meaning no limit), an unknown creation mode, pow_bits outside 0 to
// 40, a blob_quota_per_ip below blob_quota_per_peer, a
// link_records_per_ip below link_records_per_peer. It does no I/O;
// New runs it too. Zero fields are fine: they take their defaults.
func (c Config) Check() error {
	for _, f := range []struct {
		name string
		neg  bool
		v    any
	}{
		{"max_envelope", c.MaxEnvelope < 0, c.MaxEnvelope},
		{"max_messages", c.MaxMessages < 0, c.MaxMessages},
		{"max_mailbox_bytes", c.MaxMailboxBytes < 0, c.MaxMailboxBytes},
		{"ttl", c.TTL < 0, time.Duration(c.TTL)},
		{"max_store_bytes", c.MaxStoreBytes < 0, c.MaxStoreBytes},
		{"peer_burst", c.PeerBurst < 0, c.PeerBurst},
		{"ip_burst", c.IPBurst < 0, c.IPBurst},
		{"max_one_time", c.MaxOneTime < 0, c.MaxOneTime},
		{"request_timeout", c.RequestTimeout < 0, time.Duration(c.RequestTimeout)},
		{"idle_timeout", c.IdleTimeout < 0, time.Duration(c.IdleTimeout)},
		{"expiry_interval", c.ExpiryInterval < 0, time.Duration(c.ExpiryInterval)},
		{"owner_grace", c.OwnerGrace < 0, time.Duration(c.OwnerGrace)},
		{"max_topics", c.MaxTopics < 0, c.MaxTopics},
		{"max_topics_per_ip", c.MaxTopicsPerIP < 0, c.MaxTopicsPerIP},
		{"max_mailboxes_per_ip", c.MaxMailboxesPerIP < 0, c.MaxMailboxesPerIP},
		{"max_mailboxes_per_peer", c.MaxMailboxesPerPeer < 0, c.MaxMailboxesPerPeer},
		{"create_ip_burst", c.CreateIPBurst < 0, c.CreateIPBurst},
		{"topic_file_burst", c.TopicFileBurst < 0, c.TopicFileBurst},
		{"topic_file_ip_burst", c.TopicFileIPBurst < 0, c.TopicFileIPBurst},
		{"max_frame_bytes", c.MaxFrameBytes < 0, c.MaxFrameBytes},
		{"max_frame_bytes_per_ip", c.MaxFrameBytesPerIP < 0, c.MaxFrameBytesPerIP},
		{"push.window", c.Push.Window < 0, time.Duration(c.Push.Window)},
		{"max_blob", c.MaxBlob < 0, c.MaxBlob},
		{"blob_ttl", c.BlobTTL < 0, time.Duration(c.BlobTTL)},
		{"blob_quota_per_peer", c.BlobQuotaPerPeer < 0, c.BlobQuotaPerPeer},
		{"blob_quota_per_ip", c.BlobQuotaPerIP < 0, c.BlobQuotaPerIP},
		{"blob_store_bytes", c.BlobStoreBytes < 0, c.BlobStoreBytes},
		{"link_ttl", c.LinkTTL < 0, time.Duration(c.LinkTTL)},
		{"link_max_records", c.LinkMaxRecords < 0, c.LinkMaxRecords},
		{"link_records_per_peer", c.LinkRecordsPerPeer < 0, c.LinkRecordsPerPeer},
		{"link_records_per_ip", c.LinkRecordsPerIP < 0, c.LinkRecordsPerIP},
	} {
		if f.neg {
			return fmt.Errorf("%w: %s is negative (%v); leave it out or set 0 for the default", ErrConfig, f.name, f.v)
		}
	}
	switch c.Creation {
	case "", CreationOpen, CreationInvite, CreationClosed:
	default:
		return fmt.Errorf("%w: creation %q: want open, invite or closed", ErrConfig, c.Creation)
	}
	peerQuota := c.BlobQuotaPerPeer
	if peerQuota == 0 {
		peerQuota = DefaultBlobQuotaPerPeer
	}
	if c.BlobQuotaPerIP > 0 && c.BlobQuotaPerIP < peerQuota {
		return fmt.Errorf("%w: blob_quota_per_ip %d is below blob_quota_per_peer %d: one network's peers together may hold at least what one peer may",
			ErrConfig, c.BlobQuotaPerIP, peerQuota)
	}
	linkPeer := c.LinkRecordsPerPeer
	if linkPeer == 0 {
		linkPeer = DefaultLinkRecordsPerPeer
	}
	if c.LinkRecordsPerIP > 0 && c.LinkRecordsPerIP < linkPeer {
		return fmt.Errorf("%w: link_records_per_ip %d is below link_records_per_peer %d: one network's peers together may hold at least what one peer may",
			ErrConfig, c.LinkRecordsPerIP, linkPeer)
	}
	if c.PoWBits < 0 || c.PoWBits > 40 {
		return fmt.Errorf("%w: pow_bits %d: want 0 to 40", ErrConfig, c.PoWBits)
	}
	return nil
}

// ErrConfig is wrapped by every error of Check.
var ErrConfig = errors.New("relay: config")

// withDefaults checks c and returns it with every zero field set to its
// default.
func (c Config) withDefaults() (Config, error) {
	if err := c.Check(); err != nil {
		return c, err
	}
	if c.MaxEnvelope <= 0 || c.MaxEnvelope > envelope.MaxEnvelopeSize {
		c.MaxEnvelope = DefaultMaxEnvelope
	}
	if c.MaxMessages <= 0 {
		c.MaxMessages = DefaultMaxMessages
	}
	if c.MaxMailboxBytes <= 0 {
		c.MaxMailboxBytes = DefaultMaxMailboxBytes
	}
	if c.TTL <= 0 {
		c.TTL = Duration(DefaultTTL)
	}
	if c.MaxStoreBytes <= 0 {
		c.MaxStoreBytes = DefaultMaxStoreBytes
	}
	if c.PeerRate == 0 {
		c.PeerRate = DefaultPeerRate
	}
	if c.PeerBurst <= 0 {
		c.PeerBurst = DefaultPeerBurst
	}
	if c.IPRate == 0 {
		c.IPRate = DefaultIPRate
	}
	if c.IPBurst <= 0 {
		c.IPBurst = DefaultIPBurst
	}
	if c.Creation == "" {
		c.Creation = CreationOpen
	}
	if c.MaxOneTime <= 0 || c.MaxOneTime > MaxOneTime {
		c.MaxOneTime = DefaultMaxOneTime
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = Duration(DefaultRequestTimeout)
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if c.ExpiryInterval <= 0 {
		c.ExpiryInterval = Duration(DefaultExpiryInterval)
	}
	if c.OwnerGrace <= 0 {
		c.OwnerGrace = Duration(DefaultOwnerGrace)
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = DefaultMaxTopics
	}
	if c.MaxTopicsPerIP <= 0 {
		c.MaxTopicsPerIP = DefaultMaxTopicsPerIP
	}
	if c.MaxMailboxesPerIP <= 0 {
		c.MaxMailboxesPerIP = DefaultMaxMailboxesPerIP
	}
	if c.MaxMailboxesPerPeer <= 0 {
		c.MaxMailboxesPerPeer = DefaultMaxMailboxesPerPeer
	}
	if c.CreateIPPerHour == 0 {
		c.CreateIPPerHour = DefaultCreateIPPerHour
	}
	if c.CreateIPBurst <= 0 {
		c.CreateIPBurst = DefaultCreateIPBurst
	}
	if c.TopicFileRate == 0 {
		c.TopicFileRate = DefaultTopicFileRate
	}
	if c.TopicFileBurst <= 0 {
		c.TopicFileBurst = DefaultTopicFileBurst
	}
	if c.TopicFileIPRate == 0 {
		c.TopicFileIPRate = DefaultTopicFileIPRate
	}
	if c.TopicFileIPBurst <= 0 {
		c.TopicFileIPBurst = DefaultTopicFileIPBurst
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	// At least one largest frame of either protocol.
	c.MaxFrameBytes = max(c.MaxFrameBytes, MaxFrame, blobMaxFrame)
	if c.MaxFrameBytesPerIP <= 0 {
		c.MaxFrameBytesPerIP = DefaultMaxFrameBytesPerIP
	}
	c.MaxFrameBytesPerIP = min(max(c.MaxFrameBytesPerIP, MaxFrame, blobMaxFrame), c.MaxFrameBytes)
	if c.MaxBlob <= 0 {
		c.MaxBlob = DefaultMaxBlob
	}
	if c.BlobTTL <= 0 {
		c.BlobTTL = Duration(DefaultBlobTTL)
	}
	if c.BlobQuotaPerPeer <= 0 {
		c.BlobQuotaPerPeer = DefaultBlobQuotaPerPeer
	}
	if c.BlobQuotaPerIP <= 0 {
		c.BlobQuotaPerIP = max(DefaultBlobQuotaPerIP, c.BlobQuotaPerPeer)
	}
	if c.BlobStoreBytes <= 0 {
		c.BlobStoreBytes = DefaultBlobStoreBytes
	}
	if c.LinkTTL <= 0 {
		c.LinkTTL = Duration(DefaultLinkTTL)
	}
	if c.LinkMaxRecords <= 0 {
		c.LinkMaxRecords = DefaultLinkMaxRecords
	}
	if c.LinkRecordsPerPeer <= 0 {
		c.LinkRecordsPerPeer = DefaultLinkRecordsPerPeer
	}
	if c.LinkRecordsPerIP <= 0 {
		c.LinkRecordsPerIP = max(DefaultLinkRecordsPerIP, c.LinkRecordsPerPeer)
	}
	var err error
	if c.Push, err = c.Push.withDefaults(); err != nil {
		return c, err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Metrics receives the relay's counters and gauges. Implementations must
// be safe for concurrent use and cheap (they are called on the deposit
// path). There are no per-mailbox or per-peer labels by design.
type Metrics interface {
	// DepositAccepted counts one stored envelope of size bytes.
	DepositAccepted(size int)
	// DepositRejected counts one refused deposit by its error code.
	DepositRejected(code ErrorCode)
	// Delivered counts envelopes sent to owners.
	Delivered(n int)
	// Acked counts acknowledged deliveries: stored envelopes deleted by
	// acknowledgement and group messages pushed unstored to an online
	// owner that acknowledged them.
	Acked(n int)
	// Expired counts envelopes deleted by the TTL.
	Expired(n int)
	// Stored sets the gauges of stored envelopes and their bytes.
	Stored(messages, bytes int64)
	// Mailboxes sets the gauge of mailboxes.
	Mailboxes(n int64)
	// Subscribers sets the gauge of open owner subscriptions.
	Subscribers(n int64)
	// TopicFiled counts one group topic message of size bytes filed into
	// one watching mailbox.
	TopicFiled(size int)
	// TopicPushed counts one group topic message of size bytes handed to
	// a watching owner's live subscription without being stored.
	TopicPushed(size int)
	// TopicDropped counts one group topic message not filed into one
	// watching mailbox, by the code a deposit would have got (Quota,
	// Full, TooLarge, Internal), or RateLimited: its publishing peer or
	// network used up its filing budget (TopicFileRate, TopicFileIPRate).
	TopicDropped(code ErrorCode)
	// WatchedTopics sets the gauge of distinct group topics watched.
	WatchedTopics(n int64)
	// WatchRefused counts one Watch refused because the mailboxes of its
	// network watch MaxTopicsPerIP topics already.
	WatchRefused()
	// CreateRefused counts one Create refused by the open mode's limits:
	// Quota (the peer or its network holds MaxMailboxesPerPeer or
	// MaxMailboxesPerIP mailboxes) or RateLimited (CreateIPPerHour).
	// (A message not filed because its publishing peer or network used up
	// its filing budget is TopicDropped(RateLimited).)
	CreateRefused(code ErrorCode)
	// FrameRefused counts one stream reset because the frame byte budget
	// (MaxFrameBytes, MaxFrameBytesPerIP) stayed full while it waited.
	FrameRefused()
	// WakeCall counts one call to the push bridge asking to wake n
	// mailbox owners, and whether the bridge answered it.
	WakeCall(ok bool, n int)

	// BlobsStored sets the blob store's gauges: live blobs (put and not
	// deleted, uploaded or not), their bytes as the limits count them
	// (each its whole size from its put, at least MinBlobCharge), the
	// bytes of their files (acknowledged writes), and what
	// BlobStoreBytes still has room for.
	BlobsStored(blobs, bytes, held, free int64)
	// BlobPut counts one put that reserved a new blob (a put of a known
	// blob, to resume, is not counted).
	BlobPut()
	// BlobRefused counts one put refused by a limit, by reason:
	// BlobReasonPeerQuota, BlobReasonIPQuota, BlobReasonTooLarge,
	// BlobReasonFull.
	BlobRefused(reason string)
	// BlobUploaded counts n bytes of one acknowledged write.
	BlobUploaded(n int)
	// BlobCompleted counts one blob whose last write matched its hash.
	BlobCompleted()
	// BlobRead counts one read answered with n bytes.
	BlobRead(n int)
	// BlobDone counts one receipt token presented for the first time
	// (the last one deletes the blob: BlobDeleted(BlobReasonReceipts)).
	BlobDone()
	// BlobDeleted counts one blob deleted, by reason:
	// BlobReasonReceipts, BlobReasonTTL, BlobReasonHashMismatch,
	// BlobReasonLost (its file lost acknowledged bytes, found at start).
	BlobDeleted(reason string)

	// LinkRecords sets the gauge of live link records.
	LinkRecords(n int64)
	// LinkPut counts one put stored: a new record, or one its owner
	// replaced.
	LinkPut()
	// LinkGet counts one get: found (answered with a record) or not.
	LinkGet(found bool)
	// LinkDeleted counts one link record deleted, by reason:
	// LinkReasonOwner (its owner's delete) or LinkReasonTTL.
	LinkDeleted(reason string)
	// LinkRefused counts one put or delete refused, by reason:
	// LinkReasonDenied, LinkReasonTooLarge, LinkReasonPeerQuota,
	// LinkReasonIPQuota, LinkReasonFull, LinkReasonRateLimited (gets
	// too).
	LinkRefused(reason string)
}

// Reasons of Metrics.LinkRefused and Metrics.LinkDeleted, used as
// metric labels.
const (
	LinkReasonDenied      = "denied"       // bad signature, another owner, or a version not above the stored one
	LinkReasonTooLarge    = "too_large"    // record over MaxLinkRecord
	LinkReasonPeerQuota   = "peer_quota"   // LinkRecordsPerPeer
	LinkReasonIPQuota     = "ip_quota"     // LinkRecordsPerIP
	LinkReasonFull        = "full"         // LinkMaxRecords
	LinkReasonRateLimited = "rate_limited" // the per-peer or per-IP request rate
	LinkReasonOwner       = "owner"        // deleted by its owner
	LinkReasonTTL         = "ttl"          // LinkTTL passed since its last put
)

// Reasons of Metrics.BlobRefused and Metrics.BlobDeleted, used as metric
// labels.
const (
	BlobReasonPeerQuota    = "peer_quota"    // BlobQuotaPerPeer
	BlobReasonIPQuota      = "ip_quota"      // BlobQuotaPerIP
	BlobReasonTooLarge     = "too_large"     // MaxBlob
	BlobReasonFull         = "full"          // BlobStoreBytes
	BlobReasonReceipts     = "receipts"      // every registered receipt token presented
	BlobReasonTTL          = "ttl"           // BlobTTL passed since the put
	BlobReasonHashMismatch = "hash_mismatch" // the last write did not match the hash
	BlobReasonLost         = "lost"          // acknowledged bytes missing from its file at start
)

// NopMetrics discards everything; the default.
type NopMetrics struct{}

func (NopMetrics) DepositAccepted(int)                    {}
func (NopMetrics) DepositRejected(ErrorCode)              {}
func (NopMetrics) Delivered(int)                          {}
func (NopMetrics) Acked(int)                              {}
func (NopMetrics) Expired(int)                            {}
func (NopMetrics) Stored(int64, int64)                    {}
func (NopMetrics) Mailboxes(int64)                        {}
func (NopMetrics) Subscribers(int64)                      {}
func (NopMetrics) TopicFiled(int)                         {}
func (NopMetrics) TopicPushed(int)                        {}
func (NopMetrics) TopicDropped(ErrorCode)                 {}
func (NopMetrics) WatchedTopics(int64)                    {}
func (NopMetrics) WatchRefused()                          {}
func (NopMetrics) CreateRefused(ErrorCode)                {}
func (NopMetrics) FrameRefused()                          {}
func (NopMetrics) WakeCall(bool, int)                     {}
func (NopMetrics) BlobsStored(int64, int64, int64, int64) {}
func (NopMetrics) BlobPut()                               {}
func (NopMetrics) BlobRefused(string)                     {}
func (NopMetrics) BlobUploaded(int)                       {}
func (NopMetrics) BlobCompleted()                         {}
func (NopMetrics) BlobRead(int)                           {}
func (NopMetrics) BlobDone()                              {}
func (NopMetrics) BlobDeleted(string)                     {}
func (NopMetrics) LinkRecords(int64)                      {}
func (NopMetrics) LinkPut()                               {}
func (NopMetrics) LinkGet(bool)                           {}
func (NopMetrics) LinkDeleted(string)                     {}
func (NopMetrics) LinkRefused(string)                     {}

// String names an error code for logs and metric labels.
func (c ErrorCode) String() string {
	switch c {
	case CodeBadRequest:
		return "bad_request"
	case CodeAuth:
		return "auth"
	case CodeNotFound:
		return "not_found"
	case CodeQuota:
		return "quota"
	case CodeTooLarge:
		return "too_large"
	case CodeRateLimited:
		return "rate_limited"
	case CodeFull:
		return "full"
	case CodeCreationClosed:
		return "creation_closed"
	case CodeInternal:
		return "internal"
	case CodeUnsupported:
		return "unsupported"
	}
	return fmt.Sprintf("code_%d", uint16(c))
}
