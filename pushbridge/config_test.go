package pushbridge

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const exampleConfig = `{
  "listen": "127.0.0.1:8470",
  "data_dir": "/var/lib/hush-pushbridge",
  "relays": [{"name": "relay-a", "token_sha256": "` + "3b0c6d8f3f2e3b1c0c6d8f3f2e3b1c0c6d8f3f2e3b1c0c6d8f3f2e3b1c0c6d8f" + `"}],
  "limits": {"coalesce_window": "30s", "handle_per_minute": 6, "handle_burst": 3,
             "global_per_second": 200, "global_burst": 400, "register_per_hour": 6,
             "max_retries": 4, "retry_queue": 10000, "send_timeout": "10s",
             "max_sends": 64, "max_handles_per_wake": 500, "max_pending": 10000},
  "push_ttl": "24h",
  "log_level": "info",
  "apns": {"endpoint": "https://api.push.apple.com", "key_file": "AuthKey.p8", "key_id": "ABC123DEFG",
           "team_id": "DEF123GHIJ", "topic": "net.hush.app"},
  "fcm": {"credentials_file": "service-account.json", "endpoint": "https://fcm.googleapis.com"},
  "webpush": {"vapid_private_key": "priv", "vapid_public_key": "pub", "subscriber": "mailto:ops@example.org",
              "allow_private": false}
}`

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.json")
	os.WriteFile(path, []byte(exampleConfig), 0o600)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.CoalesceWindow != Duration(30*time.Second) || cfg.APNs.Topic != "net.hush.app" ||
		cfg.FCM.CredentialsFile == "" || cfg.WebPush.Subscriber == "" || len(cfg.Relays) != 1 {
		t.Fatalf("%+v", cfg)
	}
	// The example states the defaults.
	if got, want := cfg.Limits, (Limits{}).withDefaults(); got != want {
		t.Fatalf("example limits %+v differ from the defaults %+v", got, want)
	}

	for name, bad := range map[string]string{
		"unknown field": `{"listen": "x", "colour": "red"}`,
		"bad duration":  `{"limits": {"coalesce_window": "soon"}}`,
		"bad relay":     `{"relays": [{"name": "r", "token_sha256": "abc"}]}`,
		"nameless":      `{"relays": [{"token_sha256": "` + strings.Repeat("0", 64) + `"}]}`,
	} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := LoadConfig(path); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDurationOff(t *testing.T) {
	var l Limits
	if err := json.Unmarshal([]byte(`{"coalesce_window": "off"}`), &l); err != nil || l.CoalesceWindow != Off {
		t.Fatal(l.CoalesceWindow, err)
	}
	if l.withDefaults().CoalesceWindow != Off {
		t.Fatal("off became the default")
	}
	b, _ := json.Marshal(l.withDefaults())
	if !strings.Contains(string(b), `"coalesce_window":"off"`) || !strings.Contains(string(b), `"send_timeout":"10s"`) {
		t.Fatal(string(b))
	}
}
