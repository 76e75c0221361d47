package node

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/session"
	"github.com/hushnet/hush/internal/gossip"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node/attach"
	"github.com/hushnet/hush/node/events"
	"github.com/hushnet/hush/node/gate"
	"github.com/hushnet/hush/node/group"
	"github.com/hushnet/hush/node/loops"
	"github.com/hushnet/hush/node/shortlink"
	"github.com/hushnet/hush/relay"
)

// Config configures a node. The zero value needs only Home.
type Config struct {
	// Home is the node's directory; the encrypted store lives in
	// Home/store. Required.
	Home string
	// Passphrase unlocks the store; empty for a store made with
	// --no-passphrase.
	Passphrase []byte
	// ListenAddrs are libp2p multiaddrs; default DefaultListenAddrs. When
	// they are what the previous run was given, the ports it bound are
	// reused (so contacts' links stay valid across restarts).
	ListenAddrs []string
	// MaxFileSize bounds a file sent or fetched; default
	// DefaultMaxFileSize (1 GiB).
	MaxFileSize int64
	// NoMDNS turns LAN discovery off.
	NoMDNS bool
	// Relays are relay multiaddrs (ending in /p2p/<PeerID>) on which the
	// node keeps a mailbox for when it is offline (docs/RELAY.md). Default
	// none: only direct delivery.
	Relays []string
	// GroupSync is how often group members exchange digests to repair
	// messages they missed (anti-entropy). Default 30 s.
	GroupSync time.Duration
	// RecallWindow is how long after sending a message can still be
	// deleted for everyone, and how old a message a contact may still
	// recall here (recall.go). Default DefaultRecallWindow (24 h).
	RecallWindow time.Duration
	// NoSync skips the fsync after each commit: a message is then safe
	// from a killed process (the write has reached the kernel) but not
	// from a power loss, like SQLite's WAL with synchronous=NORMAL.
	// Default false: every commit is fsynced before Send returns and
	// before a delivery is acknowledged.
	NoSync bool
	// KDF overrides the Argon2id parameters when a store is created (tests
	// use small ones). Zero means the RFC 9106 second recommended option.
	KDF KDFParams
	// Now, if set, is the node's clock (tests move it): disappearing
	// messages, presence, prekey rotation and expiry, the card's signing
	// time and the validity checks of cards and prekeys it receives, and
	// the short links' refresh count with it. Default time.Now. Network
	// deadlines and retry waits stay on the wall clock.
	Now func() time.Time
	// PresenceHeartbeat is how often a device with presence on refreshes
	// its status to the contacts it is directly connected to; a status
	// older than two and a half heartbeats no longer shows "online".
	// Default DefaultPresenceHeartbeat (3 min).
	PresenceHeartbeat time.Duration
	// Logger receives node events (never content, keys or identifiers);
	// discarded by default.
	Logger *slog.Logger

	// Resources bound what the node may use; the zero value keeps the
	// desktop defaults. The mobile facade sets small ones (mobile/limits_*.go).
	Resources Resources
}

// Resources bound what a node's libp2p host and queues may use. A zero
// field takes its default.
type Resources struct {
	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// ConnHigh connections it trims back to ConnLow. Default 64 and 256.
	ConnLow, ConnHigh int
	// MemoryLimit caps, in bytes, the memory libp2p's resource manager
	// lets the whole host reserve (buffers of streams and connections).
	// Default: scaled from the machine's memory (libp2p's AutoScale: an
	// eighth of it).
	MemoryLimit int64
	// MaxConns caps the connections the resource manager lets the host
	// hold at once, in and out. Default: scaled as MemoryLimit.
	MaxConns int
	// GroupQueue is how many group topic messages may wait for the group
	// inbox before GossipSub's delivery blocks. Default 4096.
	GroupQueue int
}

// InitOptions configures Init.
type InitOptions struct {
	Name       string
	DeviceName string // this device's name in `hush device list`; empty: DefaultDeviceName
	Passphrase []byte // empty: no passphrase, the key is kept in a 0600 file
	KDF        KDFParams
}

// KDFParams are the Argon2id costs that turn a passphrase into the
// store's key. A zero field takes its default: RFC 9106 §4's second
// recommended option (3 passes, 64 MiB, 4 threads).
type KDFParams struct {
	Time      uint32 // passes
	MemoryKiB uint32 // memory cost in KiB
	Threads   uint8  // degree of parallelism
}

func (p KDFParams) store() store.KDFParams {
	return store.KDFParams{Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads}
}

// storeDir is where a home keeps its encrypted store.
func storeDir(home string) string { return filepath.Join(home, "store") }

// Node is a running hush device.
type Node struct {
	cfg  Config
	log  *slog.Logger
	db   *store.DB
	tabs tables

	account *identity.Account // nil on a device that is not the account's primary
	device  *identity.Device
	cert    *identity.DeviceCert
	list    *identity.DeviceList
	local   *session.Local
	opener  *envelope.Opener
	relays  *relay.Client // mailbox protocol client

	events      *events.Hub                        // API subscribers and WaitState callers (node/events)
	evlog       *eventLog                          // the events' persistent log (eventlog.go); nil with the test hook
	push        *pushState                         // push registration and where the wake handle is attached (push.go)
	newSessions *sessionRate                       // how many new sessions strangers and each account may open (sessionrate.go)
	storeHealth storeHealth                        // whether commits fail, for Health and a bounded log (health.go)
	records     *records                           // message records in memory: uncommitted and recent (records.go)
	tails       tailCache                          // conversations' last message and unread count (convtails.go; under mu)
	search      searchState                        // the search index (searching.go)
	timers      timersState                        // disappearing messages: timers and expiries (timers.go; under mu)
	fileServed  atomic.Int64                       // blob bytes served on /hush/file/1 (fileserve.go)
	reqDrops    requestDrops                       // what the request caps dropped (requests.go)
	linksKick   chan struct{}                      // wakes the links loop (links.go)
	invitesUsed map[[shortlink.TokenSize]byte]bool // invitations used here since the start (links.go), committed or not yet
	presence    *presenceState                     // contacts' presence and what this device told whom (presence.go; own lock)

	ready     chan struct{}
	link      *gate.Gate[peer.ID] // opens once the link is complete (WaitLink)
	loops     loops.Group         // the goroutines of a run; Run stops them before it returns
	closeOnce sync.Once

	// mu guards everything below and serialises every change to sessions,
	// contacts, messages and the outbox, so the store always sees
	// consistent batches.
	mu           sync.Mutex
	profile      profileRec
	settings     settingsRec
	contacts     map[identity.AccountID]*contact
	blocks       map[identity.AccountID]blockRec // blocked accounts (blocks.go)
	sets         map[identity.DeviceID]*session.Set
	seq          uint64 // last allocated sequence number
	seqStored    uint64 // the sequence mark a committed settings record holds (saveSeqLocked)
	txnIDKey     []byte // keys the message IDs of sends with a transaction ID (txnids.go)
	host         host.Host
	queues       map[identity.DeviceID]*peerQueue
	mailboxes    map[peer.ID]*mailboxRec           // this device's mailboxes, by relay
	prefetched   map[identity.DeviceID][]byte      // one-time prekey bundles from contacts' relays
	peers        map[identity.AccountID]*card.Card // group members who are not contacts (the directory)
	groups       map[group.GroupID]*groupState
	welcomes     map[group.GroupID]*welcomeParts // invitations arriving in parts
	earlyGroupPW map[group.GroupID][]earlyPW     // pairwise group messages that came before their Welcome
	readRosters  map[group.GroupID]*readRoster   // groups' reader slots, loaded when used (groupreads.go)
	fetches      fetching                        // attachment downloads running (filefetch.go)
	uploading    uploads                         // attachment uploads to a relay running (fileupload.go)
	blobLimits   blobLimitCache                  // the relays' blob limits as last advertised (filelimits.go)
	receipting   receipting                      // receipts owed to relays being presented (filereceipt.go)
	ps           *pubsub.PubSub                  // GossipSub, while Run runs
	guard        *gossip.Guard                   // the host GossipSub runs on, while Run runs (group_guard.go)
	guardTable   map[string][]peer.ID            // the guard's last table (guardChangedLocked)
	parting      map[string]partingTopic         // forgotten groups' topics, still in the table (partLocked)
	guardHold    bool                            // table rebuilds wait for the end of guardBatchLocked
	guardDirty   bool                            // one is due then
	counters     *counters                       // conversation counters and gap trackers (gaps.go; own lock)
	recovery     recoveries                      // session resets per remote device (recovery.go)
	unwritten    unwritten                       // messages read whose write failed (unwritten.go)
	tempTopics   map[string]*pubsub.Topic        // joined only to publish
	heldPairwise map[identity.AccountID][]heldPW // group messages waiting for a member's card
	groupClock   uint64                          // last group message time stamp (ms), see groupClockLocked
	groupIn      chan topicMsg                   // topic messages waiting for groupInbox
	topicsCh     chan struct{}                   // closed and replaced when the set of group topics changes
	caughtUp     *gate.Gate[peer.ID]             // this run's catch-up gate (catchUp)
	drained      *gate.Gate[peer.ID]             // this run's drain gate: no deadline (drain.go)
	relayDialed  map[peer.ID]time.Time           // last dial of a member's relay (connectRelaysLocked)
	relayWatch   map[peer.ID][]string            // topics each relay last accepted in a Watch

	own       ownDevices // this account's other devices (devices.go)
	syncClock syncState  // the Lamport clock of sync messages (syncstate.go)

	ownCard     *card.Card // cached, see ownCardLocked
	ownCardKey  string
	ownRouteKey string    // routeKey(ownCard)
	ownAddrsAt  time.Time // when the host's addresses were last compared with the card's
	ownCardAt   time.Time
	closed      bool

	localGoneAny bool // the localgone table may hold a record (recall.go)

	// filesPending are the sent files whose record's commit has not
	// landed: each channel is closed when it has (openServedBlob).
	filesPending map[[attach.HashSize]byte]chan struct{}
}

type tables struct {
	identity, contacts, sessions, messages, msgIndex, outbox, txns, mailboxes, groups, groupWire, peers, counters *store.Table
	devices, syncHeld, linkTickets, syncState, files, convPrefs, links, blocks                                    *store.Table
	localGone                                                                                                     *store.Table // messages deleted on this device only (recall.go)
	timers                                                                                                        *store.Table
	groupReads                                                                                                    *store.Table // group read receipts' reader slots (groupreads.go)
	groupOps                                                                                                      *store.Table // each group's op log, apart from its engine state (groups.go)
}

// profileRec is the identity table's "profile" record.
type profileRec struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// DeviceName is this device's own name, as `hush device list` shows
	// it on every device of the account ("" on a home made before
	// multi-device: "this device").
	DeviceName string `json:"device_name,omitempty"`
	// NameClock orders changes of Name made on different devices (the
	// synced setting "profile/name": last writer wins).
	NameClock uint64 `json:"name_clock,omitempty"`
	// Avatar is the account's avatar (a JPEG, profile.go), AvatarAt when
	// it was set (unix ms; the latest wins among the account's devices).
	Avatar   []byte `json:"avatar,omitempty"`
	AvatarAt uint64 `json:"avatar_at,omitempty"`
}

// settingsRec is the identity table's "settings" record.
type settingsRec struct {
	NoReadReceipts bool     `json:"no_read_receipts,omitempty"`
	Presence       bool     `json:"presence,omitempty"`     // presence on (presence.go); default off
	ListenAddrs    []string `json:"listen_addrs,omitempty"` // bound last run
	ListenAsked    []string `json:"listen_asked,omitempty"` // what last run was asked to listen on
	Seq            uint64   `json:"seq"`
}

// Identity table record IDs.
var (
	idAccount  = []byte("account")
	idDevice   = []byte("device")
	idHostKey  = []byte("host")
	idProfile  = []byte("profile")
	idList     = []byte("list")
	idCert     = []byte("cert")
	idPrekeys  = []byte("prekeys")
	idSettings = []byte("settings")
	idTxnIDKey = []byte("txnidkey")
)

func openStore(home string, passphrase []byte, kdf KDFParams, noSync bool, log *slog.Logger) (*store.DB, error) {
	if home == "" {
		return nil, errors.New("node: home directory not set")
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("node: create home: %w", err)
	}
	db, err := store.Open(storeDir(home), store.Config{Passphrase: passphrase, KDF: kdf.store(), NoSync: noSync, Logger: log})
	if err != nil {
		return nil, err
	}
	return db, nil
}

func openTables(db *store.DB) tables {
	return tables{
		identity:  db.Table("identity"),
		contacts:  db.Table("contacts"),
		sessions:  db.Table("sessions"),
		messages:  db.Table("messages"),
		msgIndex:  db.Table("msgindex"),
		outbox:    db.Table("outbox"),
		txns:      db.Table("txns"),
		mailboxes: db.Table("mailboxes"),
		groups:    db.Table("groups"),
		groupWire: db.Table("groupwire"),
		peers:     db.Table("peers"),
		counters:  db.Table("counters"),

		devices:     db.Table("devices"),
		syncHeld:    db.Table("syncheld"),
		linkTickets: db.Table("linktickets"),
		syncState:   db.Table("syncstate"),
		files:       db.Table("files"),
		convPrefs:   db.Table("convprefs"),
		links:       db.Table("links"),
		blocks:      db.Table("blocks"),
		localGone:   db.Table("localgone"),
		timers:      db.Table("timers"),
		groupReads:  db.Table("groupreads"),
		groupOps:    db.Table("groupops"),
	}
}

// New opens the store in cfg.Home and loads the identity. It does no
// network I/O; Run starts the host and the delivery loops.
func New(cfg Config) (*Node, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if _, err := os.Stat(storeDir(cfg.Home)); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoIdentity
	}
	db, err := openStore(cfg.Home, cfg.Passphrase, cfg.KDF, cfg.NoSync, log)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:          cfg,
		log:          log,
		db:           db,
		tabs:         openTables(db),
		relays:       &relay.Client{},
		prefetched:   make(map[identity.DeviceID][]byte),
		peers:        make(map[identity.AccountID]*card.Card),
		groups:       make(map[group.GroupID]*groupState),
		welcomes:     make(map[group.GroupID]*welcomeParts),
		tempTopics:   make(map[string]*pubsub.Topic),
		parting:      make(map[string]partingTopic),
		counters:     newCounters(),
		recovery:     newRecoveries(),
		heldPairwise: make(map[identity.AccountID][]heldPW),
		groupIn:      make(chan topicMsg, cmp.Or(cfg.Resources.GroupQueue, 4096)),
		topicsCh:     make(chan struct{}),
		relayDialed:  make(map[peer.ID]time.Time),
		relayWatch:   make(map[peer.ID][]string),
		ready:        make(chan struct{}),
		link:         gate.New[peer.ID](),
		push:         newPushState(),
		newSessions:  newSessionRate(),
		linksKick:    make(chan struct{}, 1),
		contacts:     make(map[identity.AccountID]*contact),
		sets:         make(map[identity.DeviceID]*session.Set),
		queues:       make(map[identity.DeviceID]*peerQueue),
		filesPending: make(map[[attach.HashSize]byte]chan struct{}),
		mailboxes:    make(map[peer.ID]*mailboxRec),
		records:      newRecords(),
		tails:        tailCache{},
		presence:     newPresenceState(),
	}
	if n.evlog, n.events, err = openEvents(db); err != nil {
		db.Close()
		return nil, err
	}
	if n.evlog != nil {
		n.evlog.message = n.loggedMessage
	}
	if err := n.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := n.loadTimersLocked(); err != nil {
		db.Close()
		return nil, fmt.Errorf("node: load timers: %w", err)
	}
	n.loadPush()
	return n, nil
}

func (n *Node) load() error {
	t := n.tabs.identity
	devBytes, err := t.Get(idDevice)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNoIdentity
	}
	if err != nil {
		return fmt.Errorf("node: load identity: %w", err)
	}
	if n.device, err = identity.ParseDevice(devBytes); err != nil {
		return fmt.Errorf("node: load device: %w", err)
	}
	if b, err := t.Get(idAccount); err == nil {
		if n.account, err = identity.ParseAccount(b); err != nil {
			return fmt.Errorf("node: load account: %w", err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := n.getJSON(t, idProfile, &n.profile); err != nil {
		return err
	}
	if err := n.getJSON(t, idSettings, &n.settings); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	n.seq, n.seqStored = n.settings.Seq, n.settings.Seq
	certBytes, err := t.Get(idCert)
	if err != nil {
		return fmt.Errorf("node: load certificate: %w", err)
	}
	if n.cert, err = identity.ParseDeviceCert(certBytes); err != nil {
		return fmt.Errorf("node: load certificate: %w", err)
	}
	listBytes, err := t.Get(idList)
	if err != nil {
		return fmt.Errorf("node: load device list: %w", err)
	}
	if n.list, err = identity.ParseDeviceList(listBytes); err != nil {
		return fmt.Errorf("node: load device list: %w", err)
	}
	pk, err := t.Get(idPrekeys)
	if err != nil {
		return fmt.Errorf("node: load prekeys: %w", err)
	}
	prekeys, err := unmarshalPrekeys(pk, n.device)
	if err != nil {
		return err
	}
	n.local = &session.Local{Cert: n.cert, Device: n.device, Prekeys: prekeys}
	if err := n.loadTxnIDKey(); err != nil {
		return err
	}
	if n.opener, err = envelope.NewOpener(n.device.MailboxKey()); err != nil {
		return err
	}
	if err := n.loadMailboxesLocked(); err != nil {
		return err
	}
	if err := n.loadContacts(); err != nil {
		return err
	}
	if err := n.loadBlocks(); err != nil {
		return err
	}
	if err := n.loadDevicesLocked(); err != nil {
		return err
	}
	if err := n.loadLocalGoneLocked(); err != nil {
		return err
	}
	return n.loadGroupsLocked()
}

func (n *Node) getJSON(t *store.Table, id []byte, v any) error {
	b, err := t.Get(id)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("node: decode %s record: %w", t.Name(), err)
	}
	return nil
}

func putJSON(b *store.Batch, t *store.Table, id []byte, v any) {
	enc, err := json.Marshal(v)
	if err != nil {
		panic("node: encode record: " + err.Error()) // only plain structs are encoded
	}
	b.Put(t, id, enc)
}

// nextSeqLocked allocates a sequence number, ordered across restarts.
func (n *Node) nextSeqLocked() uint64 {
	n.seq++
	return n.seq
}

// seqAhead is how far past the last sequence number allocated the stored
// mark is set: the settings record is rewritten about once every
// seqAhead/2 allocations instead of with each.
const seqAhead = 1 << 12

// saveSeqLocked makes the numbers allocated so far (nextSeqLocked)
// durable with t: when the stored mark has less than seqAhead/2 to go,
// t writes a new mark seqAhead past n.seq. After a restart allocation
// goes on from the stored mark, so a number used in a committed batch is
// never given again (the ones skipped make a gap, which only order sees).
func (n *Node) saveSeqLocked(t *txn) {
	if n.seq+seqAhead/2 <= n.seqStored {
		return
	}
	mark := n.seq + seqAhead
	n.settings.Seq = mark
	putJSON(t.b, n.tabs.identity, idSettings, &n.settings)
	t.committed = append(t.committed, func() { n.seqStored = max(n.seqStored, mark) })
}

// commit writes b durably, grouped with concurrent commits.
func (n *Node) commit(b *store.Batch) error {
	err := n.db.CommitGrouped(b)
	n.storeHealth.commitDone(err, time.Now())
	if err != nil {
		return fmt.Errorf("node: store: %w", err)
	}
	return nil
}

// Ready is closed once Run has the host listening.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Close releases the store. It is idempotent; Run must have returned.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		n.events.Close()
		err = n.db.Close()
	})
	return err
}

// WaitLink waits until this device's link is complete: the host listens
// (so the card names the peer and its addresses) and every configured
// relay has a mailbox, or its first attempt to make one has failed (so
// the card lists the mailboxes contacts use while this device is away).
// A link printed earlier would leave contacts unable to reach it.
func (n *Node) WaitLink(ctx context.Context) error {
	for _, ch := range []<-chan struct{}{n.ready, n.link.Opened()} {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotRunning, ctx.Err())
		}
	}
	return nil
}

// Self describes this device, including its contact link. Before Run has
// the host listening it returns ErrNotRunning; see WaitLink.
func (n *Node) Self() (Self, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.ownCardLocked(n.now())
	if err != nil {
		return Self{}, err
	}
	s := Self{
		Name:        n.profile.Name,
		Avatar:      n.profile.Avatar,
		Account:     n.cert.Account().Hex(),
		Device:      n.cert.DeviceID().Hex(),
		Link:        c.Link(),
		Fingerprint: fingerprint(n.cert.Account()),
		Protected:   n.db.Protected(),
		Mailboxes:   len(n.ownMailboxesLocked()),
		Relays:      len(n.cfg.Relays),
		History:     n.historyProgressLocked(),
	}
	if n.host != nil {
		s.PeerID = n.host.ID().String()
		for _, a := range n.host.Addrs() {
			s.Addrs = append(s.Addrs, a.String()+"/p2p/"+s.PeerID)
		}
	}
	return s, nil
}

// fingerprint groups the account key's hex in fours for reading aloud.
func fingerprint(id identity.AccountID) string {
	h := id.Hex()
	out := make([]byte, 0, len(h)+len(h)/4)
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, h[i:i+4]...)
	}
	return string(out)
}

func newMessageID() [msgIDSize]byte {
	var id [msgIDSize]byte
	rand.Read(id[:])
	return id
}

// Card returns this device's current contact card.
func (n *Node) Card() (*card.Card, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ownCardLocked(n.now())
}
