package sync

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

func conv(b byte) Conversation { return Conversation{Kind: ConvContact, ID: [32]byte{b}} }

func clk(l uint64, d byte) Clock { return Clock{Lamport: l, Device: identity.DeviceID{d}} }

// sampleMessages returns one message of every kind.
func sampleMessages(t testing.TB) []Message {
	t.Helper()
	acct := fixedAccount(t, "samples")
	list := firstList(t, acct, fixedDevice(t, "samples 1"))
	rec := Record{Conv: conv(1), ID: MessageID{1}, Author: acct.Public(), AuthorDevice: identity.DeviceID{9},
		TimeMS: 1_800_000_000_000, ReplyTo: MessageID{2}, Text: "hello ☺"}
	in := rec
	in.Author, in.Conv = identity.AccountID{7}, Conversation{Kind: ConvGroup, ID: [32]byte{3}}
	in.Attachment = []byte("an attachment pointer")
	return []Message{
		&Transcript{rec},
		&Incoming{in},
		&Edit{Conv: conv(1), Target: MessageID{1}, Actor: acct.Public(), Clock: clk(5, 1), Text: "hello again"},
		&Delete{Conv: conv(1), Target: MessageID{1}, Actor: acct.Public(), Clock: clk(6, 2)},
		&Reaction{Conv: conv(1), Target: MessageID{1}, Actor: identity.AccountID{7}, Clock: clk(7, 3), Emoji: "👍", Remove: true},
		&Status{Conv: conv(1), Target: MessageID{1}, State: StateDelivered},
		&ReadMarker{Conv: conv(1), TimeMS: 1_800_000_000_000, ID: MessageID{1}},
		&ContactAdd{Account: identity.AccountID{7}, Clock: clk(8, 1), Name: "Bob", Card: []byte("card bytes")},
		&ContactRemove{Account: identity.AccountID{7}, Clock: clk(9, 2), Seen: VersionVector{{identity.DeviceID{1}, 8}, {identity.DeviceID{2}, 3}}},
		&ContactVerify{Account: identity.AccountID{7}, Clock: clk(10, 1), Verified: true},
		&GroupNotice{Group: GroupID{4}, Ops: [][]byte{[]byte("op one"), []byte("op two")}},
		&Setting{Key: "read-receipts", Clock: clk(11, 2), Value: []byte{1}},
		&DeviceList{List: list},
		&DeviceInfo{Device: identity.DeviceID{1}, Clock: clk(12, 1), Name: "laptop", Entry: []byte("entry")},
		&MessageState{Conv: conv(1), ID: MessageID{1}, Record: &rec, Status: StateRead,
			Edits:     []EditEntry{{Actor: identity.AccountID{1}, Clock: clk(5, 1), Text: "x"}, {Actor: identity.AccountID{2}, Clock: clk(5, 2), Text: "y"}},
			Deletes:   []DeleteEntry{{Actor: identity.AccountID{1}, Clock: clk(6, 1)}},
			Reactions: []ReactionEntry{{Actor: identity.AccountID{1}, Emoji: "a", Clock: clk(7, 1), Present: true}, {Actor: identity.AccountID{1}, Emoji: "b", Clock: clk(7, 1)}}},
		&MessageState{Conv: conv(2), ID: MessageID{5}},
		&MessageState{Conv: in.Conv, ID: in.ID, Record: &in},
		&ContactState{Account: identity.AccountID{7}, Added: VersionVector{{identity.DeviceID{1}, 8}}, Removed: VersionVector{{identity.DeviceID{1}, 4}},
			InfoClock: clk(8, 1), Name: "Bob", Card: []byte("card"), VerifiedClock: clk(10, 1), Verified: true},
		&ContactState{Account: identity.AccountID{8}},
		&GroupKeys{Group: GroupID{4}, Clock: clk(13, 1), Keys: []byte("engine export")},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	seen := map[Kind]bool{}
	for _, m := range sampleMessages(t) {
		b, err := Marshal(m)
		if err != nil {
			t.Fatalf("%s: %v", m.Kind(), err)
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", m.Kind(), err)
		}
		if got.Kind() != m.Kind() {
			t.Fatalf("%s came back as %s", m.Kind(), got.Kind())
		}
		again, _ := Marshal(got)
		if !bytes.Equal(again, b) {
			t.Fatalf("%s does not re-encode to itself", m.Kind())
		}
		if dl, ok := m.(*DeviceList); ok {
			if got.(*DeviceList).List.Hash() != dl.List.Hash() {
				t.Fatal("device list changed")
			}
		} else if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Fatalf("%s changed: %+v, want %+v", m.Kind(), got, m)
		}
		seen[m.Kind()] = true
	}
	for k := KindTranscript; k < kindEnd; k++ {
		if !seen[k] {
			t.Errorf("no sample of %s", k)
		}
	}
}

// normalize makes empty slices nil, for DeepEqual.
func normalize(m Message) Message {
	switch m := m.(type) {
	case *MessageState:
		c := m.Clone()
		if len(c.Edits) == 0 {
			c.Edits = nil
		}
		if len(c.Deletes) == 0 {
			c.Deletes = nil
		}
		if len(c.Reactions) == 0 {
			c.Reactions = nil
		}
		return c
	case *ContactState:
		c := m.Clone()
		if len(c.Card) == 0 {
			c.Card = nil
		}
		if len(c.Added) == 0 {
			c.Added = nil
		}
		if len(c.Removed) == 0 {
			c.Removed = nil
		}
		return c
	}
	return m
}

func TestParseRejects(t *testing.T) {
	good, _ := Marshal(&Edit{Conv: conv(1), Target: MessageID{1}, Clock: clk(5, 1), Text: "x"})
	enc := func(m Message) []byte {
		// Encode without Marshal's checks, to build what Parse must refuse.
		w := newWriter()
		w.U8(MessageVersion)
		w.U8(uint8(m.Kind()))
		m.encode(w)
		return w.Bytes()
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"version 2", append([]byte{2}, good[1:]...), ErrMalformed},
		{"kind 0", []byte{1, 0}, ErrMalformed},
		{"kind 99", []byte{1, 99}, ErrMalformed},
		{"trailing byte", append(bytes.Clone(good), 0), ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"oversized", make([]byte, MaxMessageSize+1), ErrTooLarge},
		{"zero clock", enc(&Edit{Conv: conv(1), Text: "x"}), ErrMalformed},
		{"clock over range", enc(&Edit{Conv: conv(1), Clock: clk(MaxLamport, 1)}), ErrMalformed},
		{"conversation kind 3", enc(&Edit{Conv: Conversation{Kind: 3}, Clock: clk(1, 1)}), ErrMalformed},
		{"text not UTF-8", enc(&Edit{Conv: conv(1), Clock: clk(1, 1), Text: "\xff"}), ErrMalformed},
		{"text too long", enc(&Edit{Conv: conv(1), Clock: clk(1, 1), Text: strings.Repeat("a", MaxTextSize+1)}), ErrMalformed},
		{"empty emoji", enc(&Reaction{Conv: conv(1), Clock: clk(1, 1)}), ErrMalformed},
		{"status 4", enc(&Status{Conv: conv(1), State: 4}), ErrMalformed},
		{"contact without name", enc(&ContactAdd{Clock: clk(1, 1)}), ErrMalformed},
		{"name with control", enc(&ContactAdd{Clock: clk(1, 1), Name: "a\nb"}), ErrMalformed},
		{"seen unsorted", enc(&ContactRemove{Clock: clk(1, 1), Seen: VersionVector{{identity.DeviceID{2}, 1}, {identity.DeviceID{1}, 1}}}), ErrMalformed},
		{"seen zero", enc(&ContactRemove{Clock: clk(1, 1), Seen: VersionVector{{identity.DeviceID{2}, 0}}}), ErrMalformed},
		{"empty notice", enc(&GroupNotice{}), ErrMalformed},
		{"empty op", enc(&GroupNotice{Ops: [][]byte{{}}}), ErrMalformed},
		{"setting key", enc(&Setting{Key: "Upper", Clock: clk(1, 1)}), ErrMalformed},
		{"no device list", []byte{1, byte(KindDeviceList), 0, 0}, ErrMalformed},
		{"bad device list", []byte{1, byte(KindDeviceList), 0, 3, 1, 1, 0}, ErrMalformed},
		{"edits unsorted", enc(&MessageState{Conv: conv(1), Edits: []EditEntry{{Actor: identity.AccountID{2}, Clock: clk(1, 1)}, {Actor: identity.AccountID{1}, Clock: clk(1, 1)}}}), ErrMalformed},
		{"reactions duplicated", enc(&MessageState{Conv: conv(1), Reactions: []ReactionEntry{{Emoji: "a", Clock: clk(1, 1)}, {Emoji: "a", Clock: clk(2, 1)}}}), ErrMalformed},
		{"too many edits", enc(&MessageState{Conv: conv(1), Edits: make([]EditEntry, MaxEditActors+1)}), ErrMalformed},
		{"info without clock", enc(&ContactState{Name: "Bob"}), ErrMalformed},
		{"verified without clock", enc(&ContactState{Verified: true}), ErrMalformed},
		{"boolean 2", append(enc(&ContactVerify{Clock: clk(1, 1)})[:len(enc(&ContactVerify{Clock: clk(1, 1)}))-1], 2), ErrMalformed},
	} {
		if _, err := Parse(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Marshal(&Edit{Conv: conv(1)}); !errors.Is(err, ErrMalformed) {
		t.Errorf("Marshal of an invalid message: %v", err)
	}
}

// A declared length far over the remaining input fails before anything
// of that size is allocated.
func TestParseHugeLengthDoesNotAllocate(t *testing.T) {
	b := []byte{1, byte(KindEdit)}
	b = append(b, make([]byte, 33+16+32+24)...)
	b = append(b, 0x00, 0x00, 0x3f, 0xff) // text length 16383, nothing follows
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 256<<10 {
		t.Fatalf("%d bytes allocated for 100 truncated messages", d)
	}
}

func FuzzParse(f *testing.F) {
	for _, m := range sampleMessages(f) {
		b, _ := Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Marshal(m)
		if err != nil {
			t.Fatalf("accepted %s does not marshal: %v", m.Kind(), err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted %s does not re-encode to itself", m.Kind())
		}
		// Applying it must not panic either.
		NewReplica(identity.AccountID{}).Apply(m)
	})
}

func newWriter() *codec.Writer { return codec.NewWriter(64) }
