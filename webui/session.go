package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// Lifetimes and caps of logins and sessions.
const (
	LoginTTL    = 2 * time.Minute // a login URL's validity
	SessionIdle = 12 * time.Hour  // a session unused this long ends
	maxLogins   = 16              // login URLs pending at once; the oldest goes
	maxSessions = 64              // sessions at once; the least recently used goes
)

// session is one browser's login.
type session struct {
	csrf string
	used time.Time
}

// sessions holds the pending login tokens and the live sessions, both
// keyed by the SHA-256 of their secret (the secrets are only in the
// URL and the cookie). Nothing of it is on disk: a restarted daemon
// wants a new `hush ui`.
type sessions struct {
	now func() time.Time

	mu     sync.Mutex             // guards the maps
	logins map[[32]byte]time.Time // token hash → expiry
	live   map[[32]byte]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, logins: map[[32]byte]time.Time{}, live: map[[32]byte]*session{}}
}

func secret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func hashOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// newLogin mints a one-time login token.
func (s *sessions) newLogin() (string, time.Time) {
	tok, exp := secret(), s.now().Add(LoginTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	if len(s.logins) >= maxLogins {
		var oldest [32]byte
		var at time.Time
		for h, e := range s.logins {
			if at.IsZero() || e.Before(at) {
				oldest, at = h, e
			}
		}
		delete(s.logins, oldest)
	}
	s.logins[hashOf(tok)] = exp
	return tok, exp
}

// login spends a login token and opens a session: its cookie secret
// and CSRF token. A token works once and before its expiry only.
func (s *sessions) login(tok string) (id string, ok bool) {
	h := hashOf(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, found := s.logins[h]
	delete(s.logins, h)
	if !found || !s.now().Before(exp) {
		return "", false
	}
	s.pruneLocked()
	if len(s.live) >= maxSessions {
		var lru [32]byte
		var at time.Time
		for h, x := range s.live {
			if at.IsZero() || x.used.Before(at) {
				lru, at = h, x.used
			}
		}
		delete(s.live, lru)
	}
	id = secret()
	s.live[hashOf(id)] = &session{csrf: secret(), used: s.now()}
	return id, true
}

// get returns the session of a cookie secret, touching it.
func (s *sessions) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.live[hashOf(id)]
	if !ok || s.now().Sub(x.used) > SessionIdle {
		delete(s.live, hashOf(id))
		return session{}, false
	}
	x.used = s.now()
	return *x, true
}

// alive says whether the session still exists (an event stream asks).
func (s *sessions) alive(id string) bool {
	_, ok := s.get(id)
	return ok
}

func (s *sessions) logout(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, hashOf(id))
}

func (s *sessions) pruneLocked() {
	now := s.now()
	for h, e := range s.logins {
		if !now.Before(e) {
			delete(s.logins, h)
		}
	}
	for h, x := range s.live {
		if now.Sub(x.used) > SessionIdle {
			delete(s.live, h)
		}
	}
}
