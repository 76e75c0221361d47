package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Scope is what an HTTP API token may do.
type Scope string

// Token scopes. A read-only token may call the methods the table marks
// reads and open the event stream; anything that changes something is
// CodeForbidden. The Unix socket and in-process callers are always full.
const (
	ScopeFull     Scope = "full"
	ScopeReadOnly Scope = "read-only"
)

// TokensFile holds the tokens `hush api token create` made, hashed: a
// JSON list of Token, mode 0600, rewritten whole (through a rename) under
// an flock on TokensFile+".lock".
const TokensFile = "api.tokens"

// DefaultTokenName names api.token in ListTokens and RevokeToken.
const DefaultTokenName = "default"

// Errors of the token functions.
var (
	ErrUnknownToken = errors.New("no API token with that name or ID")
	ErrTokenExists  = errors.New("an API token with that name exists")
)

// Token describes an API token; the secret itself is never stored, only
// its SHA-256.
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Scope   Scope     `json:"scope"`
	Created time.Time `json:"created"`
	// SHA256 is the hex SHA-256 of the secret (empty in ListTokens).
	SHA256 string `json:"sha256,omitempty"`
}

type tokensFile struct {
	Tokens []Token `json:"tokens"`
}

func hashToken(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

func readTokens(home string) ([]Token, error) {
	b, err := os.ReadFile(filepath.Join(home, TokensFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("api: reading %s: %w", TokensFile, err)
	}
	var f tokensFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("api: %s: %w", filepath.Join(home, TokensFile), err)
	}
	return f.Tokens, nil
}

// lockTokens takes the tokens file's lock, so that two `hush api token`
// runs do not lose each other's changes.
func lockTokens(home string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(home, TokensFile+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("api: locking %s: %w", TokensFile, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("api: locking %s: %w", TokensFile, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateToken makes a new token of scope in home and returns its secret
// (64 hex digits), the only time it is seen, and its description. name
// is optional but unique; the daemon accepts the token from its next
// request on.
func CreateToken(home, name string, scope Scope) (string, Token, error) {
	if scope != ScopeFull && scope != ScopeReadOnly {
		return "", Token{}, fmt.Errorf("api: unknown token scope %q", scope)
	}
	if name == DefaultTokenName || len(name) > 64 {
		return "", Token{}, fmt.Errorf("api: %q cannot name a token", name)
	}
	unlock, err := lockTokens(home)
	if err != nil {
		return "", Token{}, err
	}
	defer unlock()
	list, err := readTokens(home)
	if err != nil {
		return "", Token{}, err
	}
	ids := map[string]bool{DefaultTokenName: true}
	for _, t := range list {
		if name != "" && t.Name == name {
			return "", Token{}, fmt.Errorf("%w: %q", ErrTokenExists, name)
		}
		ids[t.ID] = true
	}
	id := randomHex(4)
	for ids[id] {
		id = randomHex(4)
	}
	secret := randomHex(32)
	h := hashToken(secret)
	t := Token{ID: id, Name: name, Scope: scope, Created: time.Now().UTC().Truncate(time.Second), SHA256: hex.EncodeToString(h[:])}
	if err := writeTokens(home, append(list, t)); err != nil {
		return "", Token{}, err
	}
	t.SHA256 = ""
	return secret, t, nil
}

func writeTokens(home string, list []Token) error {
	if list == nil {
		list = []Token{}
	}
	b, err := json.MarshalIndent(tokensFile{Tokens: list}, "", "  ")
	if err != nil {
		return err
	}
	return writeFile0600(filepath.Join(home, TokensFile), append(b, '\n'))
}

// ListTokens describes home's tokens without their hashes: api.token
// first (as DefaultTokenName, full, created when the file was) if it
// exists, then the created ones, oldest first.
func ListTokens(home string) ([]Token, error) {
	list, err := readTokens(home)
	if err != nil {
		return nil, err
	}
	out := make([]Token, 0, len(list)+1)
	if fi, err := os.Stat(filepath.Join(home, TokenFile)); err == nil {
		out = append(out, Token{ID: DefaultTokenName, Name: DefaultTokenName, Scope: ScopeFull, Created: fi.ModTime().UTC().Truncate(time.Second)})
	}
	for _, t := range list {
		t.SHA256 = ""
		out = append(out, t)
	}
	return out, nil
}

// RevokeToken removes the token with that name or ID; the daemon refuses
// it (401) from its next request on, and ends event streams opened with
// it. Revoking DefaultTokenName deletes api.token: the daemon makes a new
// one at its next start (a rotation).
func RevokeToken(home, nameOrID string) (Token, error) {
	unlock, err := lockTokens(home)
	if err != nil {
		return Token{}, err
	}
	defer unlock()
	if nameOrID == DefaultTokenName {
		path := filepath.Join(home, TokenFile)
		fi, err := os.Stat(path)
		if err != nil {
			return Token{}, fmt.Errorf("%w: %q (%s does not exist)", ErrUnknownToken, nameOrID, TokenFile)
		}
		if err := os.Remove(path); err != nil {
			return Token{}, fmt.Errorf("api: revoking %s: %w", TokenFile, err)
		}
		return Token{ID: DefaultTokenName, Name: DefaultTokenName, Scope: ScopeFull, Created: fi.ModTime().UTC().Truncate(time.Second)}, nil
	}
	list, err := readTokens(home)
	if err != nil {
		return Token{}, err
	}
	for i, t := range list {
		if t.ID == nameOrID || (t.Name != "" && t.Name == nameOrID) {
			if err := writeTokens(home, append(list[:i:i], list[i+1:]...)); err != nil {
				return Token{}, err
			}
			t.SHA256 = ""
			return t, nil
		}
	}
	return Token{}, fmt.Errorf("%w: %q", ErrUnknownToken, nameOrID)
}

// authEntry is one token the HTTP listener accepts.
type authEntry struct {
	id    string
	hash  [32]byte
	scope Scope
}

// auth is the HTTP listener's view of api.token and TokensFile. It
// re-reads them when either changes (checked with a stat per request),
// so a token created or revoked by the CLI counts at once, without a
// restart. Only hashes are kept in memory.
type auth struct {
	home string

	mu      sync.Mutex
	stamps  [2]os.FileInfo // api.token, TokensFile; nil: absent
	loaded  bool
	err     error // reading the files failed: every token is refused
	entries []authEntry
}

func sameStamp(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

func (a *auth) refreshLocked() {
	var now [2]os.FileInfo
	for i, name := range []string{TokenFile, TokensFile} {
		if fi, err := os.Stat(filepath.Join(a.home, name)); err == nil {
			now[i] = fi
		}
	}
	if a.loaded && sameStamp(now[0], a.stamps[0]) && sameStamp(now[1], a.stamps[1]) {
		return
	}
	a.stamps, a.loaded, a.err, a.entries = now, true, nil, nil
	if now[0] != nil {
		b, err := os.ReadFile(filepath.Join(a.home, TokenFile))
		switch {
		case err == nil:
			if tok := strings.TrimSpace(string(b)); len(tok) >= 32 {
				a.entries = append(a.entries, authEntry{id: DefaultTokenName, hash: hashToken(tok), scope: ScopeFull})
			}
		case !errors.Is(err, fs.ErrNotExist):
			a.err = fmt.Errorf("api: reading %s: %w", TokenFile, err)
		}
	}
	list, err := readTokens(a.home)
	if err != nil {
		a.err = err
		return
	}
	for _, t := range list {
		h, err := hex.DecodeString(t.SHA256)
		if err != nil || len(h) != 32 || (t.Scope != ScopeFull && t.Scope != ScopeReadOnly) {
			a.err = fmt.Errorf("api: %s: token %q is malformed", TokensFile, t.ID)
			return
		}
		a.entries = append(a.entries, authEntry{id: t.ID, hash: [32]byte(h), scope: t.Scope})
	}
}

// lookup finds the token whose secret this is, comparing hashes in
// constant time (every entry is compared).
func (a *auth) lookup(secret string) (authEntry, bool, error) {
	h := hashToken(secret)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshLocked()
	if a.err != nil {
		return authEntry{}, false, a.err
	}
	var found authEntry
	match := 0
	for _, e := range a.entries {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found, match = e, 1
		}
	}
	return found, match == 1, nil
}

// valid says whether e is still accepted (an open event stream asks).
func (a *auth) valid(e authEntry) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refreshLocked()
	if a.err != nil {
		return false
	}
	for _, x := range a.entries {
		if x.id == e.id && x.hash == e.hash {
			return true
		}
	}
	return false
}

type scopeKey struct{}

// WithScope returns ctx carrying scope: Handler.Call refuses methods that
// change something with CodeForbidden under ScopeReadOnly. Without a
// scope a context is full (the Unix socket, in-process callers).
func WithScope(ctx context.Context, scope Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, scope)
}

func scopeOf(ctx context.Context) Scope {
	if s, ok := ctx.Value(scopeKey{}).(Scope); ok {
		return s
	}
	return ScopeFull
}

// ReadOnly says whether the method only reads (a read-only token may call
// it); false for unknown methods.
func ReadOnly(method string) bool {
	m, ok := methods[method]
	return ok && m.readOnly
}

func forbidden(method string) *Error {
	return &Error{
		Code:    CodeForbidden,
		Message: fmt.Sprintf("forbidden: %s changes something and this API token is read-only", method),
		Data:    &ErrorData{Reason: "read_only"},
	}
}
