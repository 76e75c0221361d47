package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// shape is how a type encodes as JSON: field names, tags and kinds,
// recursively, leaving out the types' own names.
func shape(t reflect.Type) string {
	if t == reflect.TypeFor[time.Time]() {
		return "time"
	}
	if t.Implements(reflect.TypeFor[json.Marshaler]()) {
		return "marshaler " + t.String()
	}
	switch t.Kind() {
	case reflect.Pointer:
		return "*" + shape(t.Elem())
	case reflect.Slice:
		return "[]" + shape(t.Elem())
	case reflect.Map:
		return "map[" + shape(t.Key()) + "]" + shape(t.Elem())
	case reflect.Struct:
		var b strings.Builder
		b.WriteString("{")
		for f := range t.Fields() {
			fmt.Fprintf(&b, "%s %s `%s`; ", f.Name, shape(f.Type), f.Tag)
		}
		return b.String() + "}"
	}
	return t.Kind().String()
}

// The API encodes node's values and clients decode them into apitypes:
// wherever node still declares its own copy of a type rather than an
// alias, the copy must encode exactly as the original.
func TestNodeTypesEncodeAsAPITypes(t *testing.T) {
	pairs := []struct{ node, wire reflect.Type }{
		{reflect.TypeFor[node.Self](), reflect.TypeFor[apitypes.Self]()},
		{reflect.TypeFor[node.Contact](), reflect.TypeFor[apitypes.Contact]()},
		{reflect.TypeFor[node.SendRequest](), reflect.TypeFor[apitypes.SendRequest]()},
		{reflect.TypeFor[node.MessageState](), reflect.TypeFor[apitypes.MessageState]()},
		{reflect.TypeFor[node.Message](), reflect.TypeFor[apitypes.Message]()},
		{reflect.TypeFor[node.Event](), reflect.TypeFor[apitypes.Event]()},
		{reflect.TypeFor[node.Group](), reflect.TypeFor[apitypes.Group]()},
		{reflect.TypeFor[node.GroupMember](), reflect.TypeFor[apitypes.GroupMember]()},
		{reflect.TypeFor[node.GroupSendRequest](), reflect.TypeFor[apitypes.GroupSendRequest]()},
	}
	for _, p := range pairs {
		if n, w := shape(p.node), shape(p.wire); n != w {
			t.Errorf("%v encodes differently from %v:\n node: %s\n  api: %s", p.node, p.wire, n, w)
		}
	}
	for _, s := range []apitypes.MessageState{apitypes.StateQueued, apitypes.StateSent, apitypes.StateDelivered,
		apitypes.StateRead, apitypes.StateFailed, apitypes.StateReceived} {
		if s.Rank() == 0 && s != apitypes.StateReceived {
			t.Errorf("state %s has no rank", s)
		}
	}
	if apitypes.StateQueued.Rank() >= apitypes.StateSent.Rank() || apitypes.StateRead.Rank() >= apitypes.StateFailed.Rank() {
		t.Error("states are ranked out of order")
	}
}

// The method table is the one docs/API.md describes, no more, no less
// (subscribe and unsubscribe are the Unix socket's own).
func TestMethodsMatchDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	// The methods table runs from its header to the first blank line.
	_, table, _ := bytes.Cut(doc, []byte("| method | params | result | errors |"))
	table, _, _ = bytes.Cut(table, []byte("\n\n"))
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-zA-Z]+)` \\|").FindAllSubmatch(table, -1) {
		if name := string(m[1]); name != "subscribe" && name != "unsubscribe" {
			documented = append(documented, name)
		}
	}
	served := api.Methods()
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("methods served: %v\ndocumented in docs/API.md: %v", served, documented)
	}
}

// Every method decodes its params into a typed struct that refuses
// unknown fields.
func TestMethodsRefuseUnknownParams(t *testing.T) {
	_, h, _ := withContacts(t)
	for _, m := range api.Methods() {
		r := call(t, h, m, `{"surplus":1}`)
		if r.Error == nil || r.Error.Code != api.CodeInvalidParams || r.Error.Message != `invalid params: unknown field "surplus"` {
			t.Errorf("%s with an unknown field: %+v", m, r.Error)
		}
	}
}
