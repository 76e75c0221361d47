package group

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/senderkey"
	"github.com/hushnet/hush/crypto/suite"
)

// Config is what an Engine needs to know about this device. Account,
// Device and DeviceList are required.
type Config struct {
	// Account signs this device's operations.
	Account *identity.Account
	// Device is this device's ID.
	Device identity.DeviceID
	// DeviceList is this account's signed device list; Device must be on
	// it. Create and Accept ops carry it, so that every member can check
	// the devices this account claims.
	DeviceList *identity.DeviceList
	// Devices lists the devices this account takes into the group,
	// written into Create and Accept ops; each must be on DeviceList.
	// Device is added if missing. Default: every device on DeviceList.
	Devices []identity.DeviceID
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Grace is how long the previous epoch's traffic from remaining
	// members is accepted after an epoch change, and a replaced sender
	// key's traffic after its successor arrives. Default: DefaultGrace.
	Grace time.Duration
}

func (c *Config) fill() error {
	if c.Account == nil {
		return errors.New("group: config without an account")
	}
	if c.DeviceList == nil || c.DeviceList.Account() != c.Account.Public() {
		return errors.New("group: config without this account's device list")
	}
	if len(c.Devices) == 0 {
		for _, d := range c.DeviceList.Devices() {
			c.Devices = append(c.Devices, d.DeviceID())
		}
	}
	if !slices.Contains(c.Devices, c.Device) {
		c.Devices = append(slices.Clone(c.Devices), c.Device)
	}
	for _, d := range c.Devices {
		if !c.DeviceList.Contains(d) {
			return fmt.Errorf("%w: config device %s", ErrUnlistedDevice, d)
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	return nil
}

// Pairwise is a message for one device, to be sent over the pairwise
// (Double Ratchet) session with it. The receiving node passes it to
// HandlePairwise with the session's authenticated account and device.
type Pairwise struct {
	Account identity.AccountID
	Device  identity.DeviceID
	Data    []byte
}

// Effects are what a call asks the caller to send. Publish messages go on
// the group's current topic (Topic); Pairwise ones to single devices.
type Effects struct {
	Publish  [][]byte
	Pairwise []Pairwise
}

func (fx *Effects) merge(o *Effects) {
	if o != nil {
		fx.Publish = append(fx.Publish, o.Publish...)
		fx.Pairwise = append(fx.Pairwise, o.Pairwise...)
	}
}

// MsgID is a group message's ID: SHA-256 of its wire bytes.
type MsgID [32]byte

// Received is an accepted group message.
type Received struct {
	ID        MsgID
	Account   identity.AccountID
	Device    identity.DeviceID
	Epoch     uint64
	Plaintext []byte // nil for an op message
	// Op is set for a control-op message; OpErr says whether it applied
	// (the message itself is accepted either way).
	Op      *Op
	OpErr   error
	Effects Effects
}

type ownKey struct {
	n       uint64
	gen     uint32    // rotations of this device's key within the epoch
	created time.Time // for RotateAfter
	sk      *senderkey.SenderKey
	sent    map[identity.DeviceID]bool
	// first is the Key message of a rotated key as of its first
	// iteration, kept only until the members of the moment have it, so
	// that the messages Seal made before Flush stay readable.
	first []byte
}

type contribution struct {
	dev  identity.DeviceID
	c    [32]byte
	sent map[identity.DeviceID]bool
}

type parkedPW struct {
	acc  identity.AccountID
	dev  identity.DeviceID
	data []byte
}

// Engine is one group as seen by one device. It is safe for concurrent
// use. Persist it (MarshalBinary) after every call that returns no error
// and before sending its Effects.
type Engine struct {
	cfg  Config
	self identity.AccountID

	mu         sync.Mutex
	ops        []*Op // guarded by mu; sorted by opCompare
	opSet      map[[32]byte]bool
	ro         *roster
	parkedOps  []*Op
	parkedPW   []parkedPW
	retrying   bool
	secrets    map[[32]byte][32]byte // epoch id → epoch secret
	contribs   map[[32]byte]*contribution
	own        map[[32]byte]*ownKey // epoch id → this device's sender key
	recv       *senderkey.Receiver
	curID      [32]byte
	epochStart time.Time
	minEpoch   uint64
	dedupe     map[MsgID]struct{}
	dedupeQ    []MsgID
	store      map[Ref][]byte
	storeQ     []Ref
	storeBytes int
	journal    [][]byte // messages stored since the last TakeJournal
	seen       map[chainRef][]rng
	latest     map[devEpoch]genChain  // newest chain per sender device and epoch
	retired    map[chainRef]time.Time // chains a newer one replaced, and when
	owed       bool                   // a rotated own key not yet distributed
	topicKeys  map[topicRef]topicKeys // derived per epoch secret (topicKeysLocked)

	logVersion  uint64 // changes with ops (LogVersion)
	marshalHint int    // the size of the last MarshalState, for its buffer
}

// topicRef names an epoch's topic keys: its number and secret, all they
// are derived from (with the group ID).
type topicRef struct {
	n      uint64
	secret [32]byte
}

// topicKeys are an epoch's topic name and topic key.
type topicKeys struct {
	name string
	key  []byte
}

// maxTopicKeys bounds the topicKeys cache; it is emptied when full.
const maxTopicKeys = 16

// topicKeysLocked returns the topic name and topic key of epoch n with
// secret s. Both are HKDF outputs that every topic message needs (SealTopic,
// OpenTopic) and Topics lists, so they are derived once per epoch.
func (e *Engine) topicKeysLocked(n uint64, s [32]byte) topicKeys {
	ref := topicRef{n, s}
	if k, ok := e.topicKeys[ref]; ok {
		return k
	}
	if e.topicKeys == nil || len(e.topicKeys) >= maxTopicKeys {
		e.topicKeys = make(map[topicRef]topicKeys)
	}
	k := topicKeys{name: topicName(e.ro.id, n, s), key: transportKey(e.ro.id, n, s)}
	e.topicKeys[ref] = k
	return k
}

func newEngine(cfg Config, id GroupID, genesis [32]byte) (*Engine, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	return &Engine{
		cfg: cfg, self: cfg.Account.Public(),
		opSet:    make(map[[32]byte]bool),
		ro:       newRoster(id, genesis),
		secrets:  make(map[[32]byte][32]byte),
		contribs: make(map[[32]byte]*contribution),
		own:      make(map[[32]byte]*ownKey),
		recv:     senderkey.NewReceiver(id),
		dedupe:   make(map[MsgID]struct{}),
		store:    make(map[Ref][]byte),
		seen:     make(map[chainRef][]rng),
		latest:   make(map[devEpoch]genChain),
		retired:  make(map[chainRef]time.Time),
	}, nil
}

// Create makes a new group with a random ID, this account as its only
// member and admin, and name. The group lists every device of
// Config.Devices; each of them other than this one is owed, in order on
// its session, a Welcome (the op log, from which it builds its engine
// with Join, as a device added by SetDevices does), this device's epoch
// contribution (Secret) and its Key. Create returns no Effects: the
// first Flush returns these (as does any call returning Effects before
// it), so call Flush right after Create, persist, then send them. Until
// they are sent they stay owed, across MarshalBinary and Unmarshal.
func Create(cfg Config, name string) (*Engine, error) {
	var id GroupID
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("group: random ID: %w", err)
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	o := &Op{Kind: OpCreate, Group: id, Lamport: 1, Device: cfg.Device, Devices: slices.Clone(cfg.Devices), List: cfg.DeviceList, Name: name}
	if err := signOp(cfg.Account, o); err != nil {
		return nil, err
	}
	e, err := newEngine(cfg, id, o.hash)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.insertLocked(o); err != nil {
		return nil, err
	}
	// Nothing is marked sent: the other devices' Welcome, Secret and
	// Key go out with the first call that returns Effects (Flush).
	e.reconcileLocked(nil)
	return e, nil
}

// ID returns the group ID.
func (e *Engine) ID() GroupID { return e.ro.id }

// State returns a copy of the current group state.
func (e *Engine) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ro.state()
}

// Name returns the group's current name (cheaper than State().Name).
func (e *Engine) Name() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ro.name
}

// IsMember reports whether this device is in the group: this account is
// a member and this device is one of its devices in the group. A device
// its account dropped (a Devices op without it) is not.
func (e *Engine) IsMember() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.inLocked()
}

// inLocked reports whether this device is a member device.
func (e *Engine) inLocked() bool { return e.ro.isMemberDevice(e.self, e.cfg.Device) }

// Ops returns the encoded operation log in order.
func (e *Engine) Ops() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([][]byte, len(e.ops))
	for i, o := range e.ops {
		out[i] = o.Marshal()
	}
	return out
}

// Topic returns the current epoch's topic, or "" while its secret is
// unknown (or this account is not a member).
func (e *Engine) Topic() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.ro.epoch()
	if cur == nil || !e.inLocked() {
		return ""
	}
	s, ok := e.secrets[cur.key]
	if !ok {
		return ""
	}
	return e.topicKeysLocked(cur.n, s).name
}

// Topics returns every topic to stay subscribed to: the current one and
// those of earlier epochs still inside the grace window.
func (e *Engine) Topics() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.expireLocked()
	var out []string
	if !e.inLocked() {
		return nil
	}
	for i := len(e.ro.epochs) - 1; i >= 0; i-- {
		ep := &e.ro.epochs[i]
		if ep.n < e.minEpoch {
			break
		}
		if s, ok := e.secrets[ep.key]; ok {
			out = append(out, e.topicKeysLocked(ep.n, s).name)
		}
	}
	return out
}

// TopicName derives the GossipSub topic of an epoch from its secret:
// "hush/g/" ‖ hex(HKDF-SHA-256(secret, info = label ‖ group ID ‖ epoch)[:16]).
func TopicName(id GroupID, epoch uint64, secret [32]byte) string { return topicName(id, epoch, secret) }

func topicName(id GroupID, epoch uint64, secret [32]byte) string {
	w := codec.NewWriter(len(labelTopic) + 40)
	w.Fixed([]byte(labelTopic))
	w.Fixed(id[:])
	w.U64(epoch)
	return TopicPrefix + hex.EncodeToString(suite.HKDF(secret[:], nil, string(w.Bytes()), 16))
}

func epochSecret(id GroupID, ep *epochRec, prev []byte, c [32]byte) [32]byte {
	w := codec.NewWriter(len(labelEpoch) + 72)
	w.Fixed([]byte(labelEpoch))
	w.Fixed(id[:])
	w.U64(ep.n)
	w.Fixed(ep.id[:])
	var s [32]byte
	copy(s[:], suite.HKDF(c[:], prev, string(w.Bytes()), 32))
	return s
}

// lamportLocked is the clock for a new local op.
func (e *Engine) nextLamportLocked() uint64 {
	if len(e.ops) == 0 {
		return 1
	}
	return e.ops[len(e.ops)-1].Lamport + 1
}

// insertLocked adds a verified op to the log and recomputes the state. If
// o itself does not apply, nothing changes and the rule's error is
// returned.
func (e *Engine) insertLocked(o *Op) error {
	if o.Group != e.ro.id {
		return ErrWrongGroup
	}
	if e.opSet[o.hash] {
		return ErrDuplicate
	}
	if len(e.ops) >= MaxOps {
		return fmt.Errorf("%w: operation log full", ErrTooMany)
	}
	pos, _ := slices.BinarySearchFunc(e.ops, o, opCompare)
	if pos == len(e.ops) {
		if err := e.ro.apply(o); err != nil {
			return err
		}
		e.ops = append(e.ops, o)
		e.opSet[o.hash] = true
		e.logVersion++
		return nil
	}
	// A late op: replay the whole log with it in place.
	ops := slices.Insert(slices.Clone(e.ops), pos, o)
	ro := newRoster(e.ro.id, e.ro.genesis)
	var oerr error
	for _, x := range ops {
		if err := ro.apply(x); err != nil && x == o {
			oerr = err
		}
	}
	if oerr != nil {
		return oerr
	}
	e.ops, e.ro = ops, ro
	e.opSet[o.hash] = true
	e.logVersion++
	return nil
}

// parkable reports whether an op rejected with err may apply once a
// missing predecessor arrives.
func parkable(err error) bool {
	return errors.Is(err, ErrNotMember) || errors.Is(err, ErrNotInvited) || errors.Is(err, ErrNotAdmin) ||
		errors.Is(err, ErrEpoch) || errors.Is(err, ErrAlreadyMember) || errors.Is(err, ErrDeviceTaken) ||
		errors.Is(err, ErrStaleList) // a later-arriving earlier Leave and Accept may reset the version
}

// applyLocked inserts o, parks it if it may apply later, retries parked
// ops after a success, and reconciles keys and secrets.
func (e *Engine) applyLocked(o *Op, fx *Effects, park bool) error {
	before := e.memberDevicesLocked()
	err := e.insertLocked(o)
	if errors.Is(err, ErrDuplicate) {
		return nil
	}
	if err != nil {
		if park && parkable(err) && !slices.ContainsFunc(e.parkedOps, func(p *Op) bool { return p.hash == o.hash }) {
			if len(e.parkedOps) >= maxParked {
				e.parkedOps = e.parkedOps[1:]
			}
			e.parkedOps = append(e.parkedOps, o)
		}
		return err
	}
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(e.parkedOps); i++ {
			p := e.parkedOps[i]
			if err := e.insertLocked(p); err == nil || !parkable(err) {
				e.parkedOps = slices.Delete(e.parkedOps, i, i+1)
				i--
				progress = progress || err == nil
			}
		}
	}
	after := e.memberDevicesLocked()
	for d := range before {
		if !after[d] {
			e.recv.RemoveSender(d)
			e.forgetChainsLocked(func(x identity.DeviceID, _ uint64) bool { return x == d })
		}
	}
	e.reconcileLocked(fx)
	e.retryParkedLocked(fx)
	return nil
}

func (e *Engine) memberDevicesLocked() map[identity.DeviceID]bool {
	m := make(map[identity.DeviceID]bool, len(e.ro.members))
	for _, mem := range e.ro.members {
		for _, d := range mem.Devices {
			m[d] = true
		}
	}
	return m
}

// reconcileLocked brings secrets, contributions and sender keys in line
// with the current state, appending what must be sent to fx. With fx nil
// it sends nothing and marks nothing sent.
func (e *Engine) reconcileLocked(fx *Effects) {
	ro := e.ro
	eps := ro.epochs
	// 1. Contributions this device owes, and epoch secrets it can derive.
	for i := range eps {
		ep := &eps[i]
		if ep.members == nil {
			continue
		}
		if ep.authorAcc == e.self && ep.authorDev == e.cfg.Device {
			c := e.contribs[ep.id]
			if c == nil || c.dev != e.cfg.Device {
				c = &contribution{dev: e.cfg.Device, sent: make(map[identity.DeviceID]bool)}
				if _, err := rand.Read(c.c[:]); err != nil {
					continue
				}
				e.contribs[ep.id] = c
			}
			var welcome [][]byte
			for _, a := range sortedAccounts(ro.members) {
				if fx == nil || !ep.members[a] {
					continue
				}
				for _, d := range ro.members[a].Devices {
					if d == e.cfg.Device || c.sent[d] || !ep.devs[d] {
						continue
					}
					c.sent[d] = true
					if i == 0 && a == e.self {
						// This device created the group with d, another
						// device of its account, which has no engine
						// yet: the log goes first, to Join from.
						if welcome == nil {
							welcome = e.welcomeLocked()
						}
						for _, w := range welcome {
							fx.Pairwise = append(fx.Pairwise, Pairwise{a, d, w})
						}
					}
					fx.Pairwise = append(fx.Pairwise, Pairwise{a, d, e.secretMsg(ep, c.c)})
				}
			}
		}
		if _, ok := e.secrets[ep.key]; ok {
			continue
		}
		c := e.contribs[ep.id]
		if c == nil || c.dev != ep.authorDev {
			continue
		}
		if i == 0 {
			e.secrets[ep.key] = epochSecret(ro.id, ep, nil, c.c)
		} else if prev, ok := e.secrets[eps[i-1].key]; ok {
			e.secrets[ep.key] = epochSecret(ro.id, ep, prev[:], c.c)
		}
	}
	// 2. The current epoch: grace timer and this device's sender key.
	cur := ro.epoch()
	if cur == nil {
		return
	}
	if cur.key != e.curID {
		e.curID = cur.key
		e.epochStart = e.cfg.Now()
	}
	e.expireLocked()
	e.pruneLocked()
	if !e.inLocked() {
		return
	}
	secret, ok := e.secrets[cur.key]
	if !ok {
		return
	}
	k := e.own[cur.key]
	if k == nil {
		sk, err := senderkey.NewSenderKey(ro.id, cur.n, e.cfg.Device)
		if err != nil {
			return
		}
		k = &ownKey{n: cur.n, gen: e.nextGenLocked(cur.n), created: e.cfg.Now(), sk: sk, sent: make(map[identity.DeviceID]bool)}
		e.own[cur.key] = k
		e.installOwnLocked(k)
	}
	if fx == nil {
		e.owed = true // sent at the next call that can send
		return
	}
	var dist []byte
	for _, a := range sortedAccounts(ro.members) {
		for _, d := range ro.members[a].Devices {
			if d == e.cfg.Device || k.sent[d] {
				continue
			}
			if dist == nil {
				dist = k.first
			}
			if dist == nil {
				dist = e.keyMsg(cur, secret, k)
			}
			k.sent[d] = true
			fx.Pairwise = append(fx.Pairwise, Pairwise{a, d, dist})
		}
	}
	k.first = nil // later members read from where the chain is then
	e.owed = false
}

// expireLocked ends the grace window of earlier epochs.
func (e *Engine) expireLocked() bool {
	cur := e.ro.epoch()
	if cur == nil || e.minEpoch >= cur.n {
		return false
	}
	if e.cfg.Now().Sub(e.epochStart) < e.cfg.Grace {
		return false
	}
	e.minEpoch = cur.n
	e.recv.RemoveEpochsBefore(cur.n)
	e.forgetChainsLocked(func(_ identity.DeviceID, n uint64) bool { return n < cur.n })
	for id, k := range e.own {
		if k.n < cur.n {
			delete(e.own, id)
		}
	}
	return true
}

// pruneLocked forgets secrets and contributions of epochs older than the
// kept window.
func (e *Engine) pruneLocked() {
	eps := e.ro.epochs
	if len(eps) > keepEpochs {
		eps = eps[len(eps)-keepEpochs:]
	}
	keep := make(map[[32]byte]bool, 2*keepEpochs)
	for _, ep := range eps {
		keep[ep.id] = true
		keep[ep.key] = true
	}
	for id := range e.secrets {
		if !keep[id] {
			delete(e.secrets, id)
		}
	}
	for id := range e.contribs {
		if !keep[id] {
			delete(e.contribs, id)
		}
	}
	for id := range e.own {
		if !keep[id] {
			delete(e.own, id)
		}
	}
}

// Seal encrypts plaintext for the group under this device's sender key of
// the current epoch and returns the wire message to publish on Topic and
// its ID. When the key has sealed RotateMessages messages or is
// RotateAfter old, Seal first replaces it: call Flush after Seal for the
// new key's pairwise distributions.
func (e *Engine) Seal(plaintext []byte) ([]byte, MsgID, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, MsgID{}, fmt.Errorf("%w: plaintext of %d bytes, limit %d", ErrTooLarge, len(plaintext), MaxPlaintext)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.inLocked() {
		return nil, MsgID{}, ErrNotMember
	}
	k := e.own[e.curID]
	if k == nil {
		return nil, MsgID{}, ErrNotReady
	}
	if e.rotationDueLocked(k) {
		if nk, err := e.rotateLocked(k); err == nil {
			k = nk
		}
	}
	w, err := e.sealLocked(k, kindAppMsg, plaintext)
	if err != nil {
		return nil, MsgID{}, err
	}
	return w, msgID(w), nil
}

func (e *Engine) sealLocked(k *ownKey, kind byte, pt []byte) ([]byte, error) {
	inner := make([]byte, 0, 1+len(pt))
	inner = append(append(inner, kind), pt...)
	ct, err := k.sk.Encrypt(inner)
	if err != nil {
		return nil, fmt.Errorf("group: seal: %w", err)
	}
	w := make([]byte, 0, 2+len(ct))
	w = append(w, Version, kindGroupMsg)
	w = append(w, ct...)
	h, _ := parseWireHeader(w)
	e.recordLocked(msgID(w), h, w)
	return w, nil
}

// Open checks and decrypts a group wire message: framing and size, group,
// epoch (current, or an earlier one inside the grace window), that the
// sender device is a current member, replay, then senderkey's signature
// check and decryption. An op message is applied as by ApplyOp.
func (e *Engine) Open(wire []byte) (*Received, error) {
	h, err := parseWireHeader(wire)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if h.group != e.ro.id {
		return nil, ErrWrongGroup
	}
	e.expireLocked()
	cur := e.ro.epoch()
	if cur == nil || h.epoch < e.minEpoch || h.epoch > cur.n {
		return nil, ErrEpoch
	}
	acc, ok := e.ro.memberOfDevice(h.device)
	if !ok {
		return nil, ErrNotMember
	}
	if e.closedLocked(chainRef{h.device, h.epoch, h.chain}) {
		return nil, fmt.Errorf("%w: the sender has replaced this key", ErrEpoch)
	}
	id := msgID(wire)
	if _, dup := e.dedupe[id]; dup {
		return nil, ErrReplay
	}
	pt, _, err := e.recv.Decrypt(wire[2:])
	switch {
	case errors.Is(err, senderkey.ErrDuplicate):
		return nil, ErrReplay
	case errors.Is(err, senderkey.ErrUnknownChain), errors.Is(err, senderkey.ErrEpochClosed):
		return nil, fmt.Errorf("%w: no chain for this sender and epoch", ErrEpoch)
	case err != nil:
		return nil, ErrDecrypt
	}
	e.recordLocked(id, h, wire)
	rec := &Received{ID: id, Account: acc, Device: h.device, Epoch: h.epoch}
	if e.owed {
		e.reconcileLocked(&rec.Effects) // a rotated key the caller did not Flush
	}
	switch {
	case len(pt) == 0:
		rec.OpErr = fmt.Errorf("%w: empty plaintext", ErrMalformed)
		return rec, nil
	case pt[0] == kindAppMsg:
		rec.Plaintext = pt[1:]
		return rec, nil
	case pt[0] != kindOpMsg:
		rec.OpErr = fmt.Errorf("%w: inner kind %#x", ErrMalformed, pt[0])
		return rec, nil
	}
	o, err := ParseOp(pt[1:])
	if err != nil {
		rec.OpErr = err
		return rec, nil
	}
	rec.Op = o
	rec.OpErr = e.applyLocked(o, &rec.Effects, true)
	return rec, nil
}

// Tick ends grace windows that have run out; call it now and then (the
// other calls do it too). It reports whether it changed the engine, which
// then needs saving.
func (e *Engine) Tick() (changed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.expireLocked()
}
