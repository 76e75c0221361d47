package api_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// jsonString quotes s for a params literal.
func jsonString(s string) string { return strconv.Quote(s) }

func TestFileParamsValidation(t *testing.T) {
	b, h, _ := withContacts(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "cat.png")
	os.WriteFile(file, []byte("\x89PNG\r\n\x1a\nnot really"), 0o600)
	in := b.ReceiveFile("bob", "report.pdf", "", []byte("%PDF-1.4 tiny"))
	out := filepath.Join(dir, "out.pdf")
	big := strings.Repeat("x", node.MaxTextSize+1)
	tests := []struct {
		method, params string
		code           int // 0: success
		reason         string
	}{
		{"sendFile", `{"to":"alice","path":` + jsonString(file) + `}`, 0, ""},
		{"sendFile", `{"to":"alice","path":` + jsonString(file) + `,"caption":"look","txnId":"t1"}`, 0, ""},
		{"sendFile", `{"path":` + jsonString(file) + `}`, api.CodeInvalidParams, ""},
		{"sendFile", `{"to":"alice"}`, api.CodeInvalidParams, ""},
		{"sendFile", `{"to":"alice","path":"cat.png"}`, api.CodeInvalidParams, ""},   // relative
		{"sendFile", `{"to":"alice","path":"./cat.png"}`, api.CodeInvalidParams, ""}, // relative
		{"sendFile", `{"to":"alice","path":` + jsonString(file) + `,"caption":"` + big + `"}`, api.CodeBadMessage, "message_too_large"},
		{"sendFile", `{"to":"alice","path":` + jsonString(filepath.Join(dir, "gone")) + `}`, api.CodeInvalidInput, "no_such_file"},
		{"sendFile", `{"to":"alice","path":` + jsonString(dir) + `}`, api.CodeInvalidInput, "not_a_file"},
		{"sendFile", `{"to":"carol","path":` + jsonString(file) + `}`, api.CodeUnknownContact, "unknown_contact"},
		{"sendFile", `{"to":"alice","path":` + jsonString(file) + `,"kind":"text"}`, api.CodeInvalidParams, ""},
		{"getFile", `{}`, api.CodeInvalidParams, ""},
		{"getFile", `{"id":"` + in.ID + `","timeout":"5s"}`, api.CodeInvalidParams, ""},  // timeout without out
		{"getFile", `{"id":"` + in.ID + `","out":"out.pdf"}`, api.CodeInvalidParams, ""}, // relative
		{"getFile", `{"id":"` + in.ID + `","out":` + jsonString(out) + `,"timeout":"soon"}`, api.CodeInvalidParams, ""},
		{"getFile", `{"id":"` + in.ID + `","out":` + jsonString(out) + `,"timeout":"11m"}`, api.CodeInvalidParams, ""},
		{"getFile", `{"id":"` + in.ID + `","out":` + jsonString(out) + `,"timeout":"-1s"}`, api.CodeInvalidParams, ""},
		{"getFile", `{"id":"` + in.ID + `","replace":true}`, api.CodeInvalidParams, ""}, // replace without out
		{"getFile", `{"id":"` + in.ID + `","out":` + jsonString(file) + `}`, api.CodeInvalidInput, "file_exists"},
		{"getFile", `{"id":"` + in.ID + `","out":` + jsonString(dir) + `,"replace":true}`, api.CodeInvalidInput, "not_a_file"},
		{"getFile", `{"id":"nope"}`, api.CodeNotFound, "unknown_message"},
		{"getFile", `{"id":"` + in.ID + `"}`, 0, ""},
		{"waitFile", `{}`, api.CodeInvalidParams, ""},
		{"waitFile", `{"id":"` + in.ID + `","out":` + jsonString(out) + `}`, api.CodeInvalidParams, ""},
		{"waitFile", `{"id":"` + in.ID + `","replace":true}`, api.CodeInvalidParams, ""},
		{"waitFile", `{"id":"` + in.ID + `","timeout":"0s"}`, api.CodeInvalidParams, ""},
		{"waitFile", `{"id":"` + in.ID + `","timeoutMs":100}`, api.CodeInvalidParams, ""},
		{"waitFile", `{"id":"nope","timeout":"1s"}`, api.CodeNotFound, "unknown_message"},
		{"waitFile", `{"id":"` + in.ID + `","timeout":"20ms"}`, api.CodeTimeout, "timeout"},
		{"listFiles", `{}`, api.CodeInvalidParams, ""},
		{"listFiles", `{"contact":"carol"}`, api.CodeUnknownContact, "unknown_contact"},
		{"listFiles", `{"contact":"alice"}`, 0, ""},
	}
	for _, tc := range tests {
		r := call(t, h, tc.method, tc.params)
		switch {
		case tc.code == 0 && r.Error != nil:
			t.Errorf("%s %.80s: error %d %q, want success", tc.method, tc.params, r.Error.Code, r.Error.Message)
		case tc.code != 0 && r.Error == nil:
			t.Errorf("%s %.80s: success %s, want error %d", tc.method, tc.params, r.Result, tc.code)
		case tc.code != 0 && (r.Error.Code != tc.code || r.Error.Reason() != tc.reason || r.Error.Message == ""):
			t.Errorf("%s %.80s: error %d %q (%s), want %d (%s)", tc.method, tc.params, r.Error.Code, r.Error.Message, r.Error.Reason(), tc.code, tc.reason)
		}
	}
	// The relative path's refusal says why.
	r := call(t, h, "sendFile", `{"to":"alice","path":"cat.png"}`)
	if r.Error == nil || !strings.Contains(r.Error.Message, `"path" must be an absolute path`) {
		t.Errorf("relative path: %+v", r.Error)
	}
	// Nothing was written at out, and only the two good sends (one
	// retried with its txnId would not add a third) reached the backend.
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("out written by a refused call: %v", err)
	}
	if got := b.SentPaths(); len(got) != 2 || got[0] != file {
		t.Errorf("SendFile calls: %q", got)
	}
}

func TestFileMethodResults(t *testing.T) {
	b, h, _ := withContacts(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "cat.png")
	os.WriteFile(file, []byte("\x89PNG\r\n\x1a\nnot really"), 0o600)

	// An empty list is [], not null.
	if r := call(t, h, "listFiles", `{"contact":"bob"}`); r.Error != nil || string(r.Result) != "[]" {
		t.Errorf("empty listFiles: %s %+v", r.Result, r.Error)
	}

	var sent apitypes.Message
	decode(t, call(t, h, "sendFile", `{"to":"alice","path":`+jsonString(file)+`,"caption":"my cat","txnId":"c1"}`), &sent)
	if sent.Direction != "out" || sent.Text != "my cat" || sent.File == nil || sent.File.Name != "cat.png" ||
		sent.File.MIME != "image/png" || sent.File.State != apitypes.FileSent || sent.File.Size != 18 {
		t.Errorf("sendFile = %+v %+v", sent, sent.File)
	}
	var again apitypes.Message
	decode(t, call(t, h, "sendFile", `{"to":"alice","path":`+jsonString(file)+`,"txnId":"c1"}`), &again)
	if again.ID != sent.ID {
		t.Errorf("retried txnId sent a second file: %s, %s", sent.ID, again.ID)
	}

	// Receiving: offered; getFile starts the download and returns at once.
	events, cancel := b.Subscribe(0)
	defer cancel()
	in := b.ReceiveFile("bob", "report.pdf", "the report", []byte("%PDF-1.4 a small report"))
	var m apitypes.Message
	decode(t, call(t, h, "getFile", `{"id":"`+in.ID+`"}`), &m)
	if m.File == nil || m.File.State != apitypes.FileDownloading || m.File.Bytes != 0 {
		t.Fatalf("getFile without out = %+v", m.File)
	}
	r := call(t, h, "listFiles", `{"contact":"bob"}`)
	if !strings.Contains(string(r.Result), `"file":{"name":"report.pdf","mime":"application/pdf","size":23,`) ||
		!strings.Contains(string(r.Result), `"state":"downloading"`) {
		t.Errorf("listFiles JSON: %s", r.Result)
	}

	// getFile with out waits for the download, then writes the file.
	out := filepath.Join(dir, "saved.pdf")
	done := make(chan api.Response, 1)
	go func() { done <- call(t, h, "getFile", `{"id":"`+in.ID+`","out":`+jsonString(out)+`,"timeout":"5s"}`) }()
	for b.Fetches() < 2 {
		time.Sleep(time.Millisecond)
	}
	select {
	case r := <-done:
		t.Fatalf("getFile with out returned before the download ended: %s %+v", r.Result, r.Error)
	case <-time.After(20 * time.Millisecond):
	}
	b.FileProgress(in.ID, 10)
	b.CompleteFile(in.ID)
	r = <-done
	decode(t, r, &m)
	if m.File.State != apitypes.FileDone || m.File.Bytes != 23 {
		t.Errorf("getFile with out = %+v", m.File)
	}
	if data, err := os.ReadFile(out); err != nil || string(data) != "%PDF-1.4 a small report" {
		t.Errorf("saved file: %q %v", data, err)
	}
	if _, err := os.Stat(out + ".hush-part"); !os.IsNotExist(err) {
		t.Errorf("part file left behind: %v", err)
	}

	// Progress came as update events of the message.
	var progress []int64
	for len(progress) < 3 {
		select {
		case ev := <-events:
			if ev.Type == node.EventUpdate && ev.Message != nil && ev.Message.ID == in.ID && ev.Message.File.State != apitypes.FileOffered {
				progress = append(progress, ev.Message.File.Bytes)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("update events: %v", progress)
		}
	}
	if progress[0] != 0 || progress[1] != 10 || progress[2] != 23 {
		t.Errorf("progress events: %v", progress)
	}

	// An existing out is replaced only when asked.
	os.WriteFile(out, []byte("old"), 0o600)
	if r := call(t, h, "getFile", `{"id":"`+in.ID+`","out":`+jsonString(out)+`}`); r.Error == nil || r.Error.Reason() != "file_exists" {
		t.Errorf("getFile over an existing file: %+v", r.Error)
	}
	decode(t, call(t, h, "getFile", `{"id":"`+in.ID+`","out":`+jsonString(out)+`,"replace":true}`), &m)
	if data, _ := os.ReadFile(out); string(data) != "%PDF-1.4 a small report" {
		t.Errorf("replaced file: %q", data)
	}

	// waitFile on a finished file returns it at once.
	decode(t, call(t, h, "waitFile", `{"id":"`+in.ID+`"}`), &m)
	if m.File.State != apitypes.FileDone {
		t.Errorf("waitFile = %+v", m.File)
	}
}

func TestGetFileEnds(t *testing.T) {
	b, h, _ := withContacts(t)
	out := filepath.Join(t.TempDir(), "x")
	in := b.ReceiveFile("bob", "x.bin", "", []byte{1, 2, 3})

	// A download that fails while getFile waits: error 9, nothing at out.
	done := make(chan api.Response, 1)
	go func() { done <- call(t, h, "getFile", `{"id":"`+in.ID+`","out":`+jsonString(out)+`}`) }()
	for b.Fetches() < 1 {
		time.Sleep(time.Millisecond)
	}
	b.FailFile(in.ID, apitypes.FileFailed, "unreachable")
	r := <-done
	if r.Error == nil || r.Error.Code != api.CodeFile || r.Error.Reason() != "file_failed" || r.Error.Message != "the download of x.bin failed: unreachable" {
		t.Errorf("failed download: %+v", r.Error)
	}
	// Expired: refused at once (FetchFile cannot restart it).
	b.FailFile(in.ID, apitypes.FileExpired, "")
	r = call(t, h, "getFile", `{"id":"`+in.ID+`","out":`+jsonString(out)+`}`)
	if r.Error == nil || r.Error.Code != api.CodeFile || r.Error.Reason() != "file_expired" {
		t.Errorf("expired: %+v", r.Error)
	}
	// Timing out: error 7; the download goes on.
	in2 := b.ReceiveFile("bob", "y.bin", "", []byte{4})
	r = call(t, h, "getFile", `{"id":"`+in2.ID+`","out":`+jsonString(out)+`,"timeout":"20ms"}`)
	if r.Error == nil || r.Error.Code != api.CodeTimeout || !strings.Contains(r.Error.Message, "the download goes on") {
		t.Errorf("timeout: %+v", r.Error)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("out written: %v", err)
	}
	// A message without a file: the backend's error passes through.
	m, _ := b.Send(t.Context(), node.SendRequest{To: "bob", Text: "plain"})
	if r := call(t, h, "getFile", `{"id":"`+m.ID+`"}`); r.Error == nil || !strings.Contains(r.Error.Message, "no file") {
		t.Errorf("getFile of a plain message: %+v", r.Error)
	}
}
