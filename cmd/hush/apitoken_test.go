package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hushnet/hush/api"
)

func TestAPITokenVerbs(t *testing.T) {
	home := t.TempDir()
	h := func(args ...string) result { return hush(t, nil, nil, append([]string{"--home", home}, args...)...) }

	r := h("api", "token", "create", "--read-only", "--name", "dash")
	secret := strings.TrimSpace(r.stdout)
	if r.code != 0 || len(secret) != 64 || !strings.Contains(r.stderr, "shown only this once") {
		t.Fatalf("create: %+v", r)
	}
	if r := h("api", "token", "create", "--name", "dash"); r.code != 1 || !strings.Contains(r.stderr, "already named") {
		t.Errorf("duplicate: %+v", r)
	}
	if r := h("api", "token", "create", "--name", "default"); r.code != 2 {
		t.Errorf("named default: %+v", r)
	}
	if r := h("api", "token", "create", "--name", "bot"); r.code != 0 {
		t.Fatalf("create full: %+v", r)
	}
	r = h("api", "token", "list")
	if r.code != 0 || strings.Contains(r.stdout, secret) || !strings.Contains(r.stdout, "dash  read-only") ||
		!strings.Contains(r.stdout, "bot   full") {
		t.Errorf("list:\n%s", r.stdout)
	}
	raw, _ := os.ReadFile(filepath.Join(home, api.TokensFile))
	if strings.Contains(string(raw), secret) {
		t.Error("secret stored in the clear")
	}
	var list []api.Token
	if r := h("api", "token", "list", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 2 {
		t.Fatalf("list --json: %+v", r)
	}
	if r := h("api", "token", "revoke", list[0].ID); r.code != 0 || !strings.Contains(r.stdout, `"dash"`) {
		t.Errorf("revoke by id: %+v", r)
	}
	if r := h("api", "token", "revoke", "dash"); r.code != 1 || !strings.Contains(r.stderr, "no API token") {
		t.Errorf("revoke again: %+v", r)
	}
	for _, args := range [][]string{{"api"}, {"api", "tokens", "list"}, {"api", "token", "revoke"}, {"api", "token", "list", "x"}} {
		if r := h(args...); r.code != 2 {
			t.Errorf("%v: %+v", args, r)
		}
	}
}
