package pushbridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Config is the bridge's configuration and the JSON config file of
// cmd/hush-pushbridge (docs/PUSH.md). The zero value of every field takes
// the default its comment states; Open needs only DataDir.
type Config struct {
	// Listen is the host:port of the HTTP API. Default 127.0.0.1:8470.
	// Put a TLS-terminating proxy in front to serve devices and relays
	// on other hosts.
	Listen string `json:"listen,omitempty"`

	// DataDir holds the bridge's encrypted store: its HPKE key and the
	// tombstones of dead and unregistered handles. Required by Open;
	// cmd/hush-pushbridge defaults it to $XDG_DATA_HOME/hush-pushbridge,
	// else ./hush-pushbridge-data.
	DataDir string `json:"data_dir,omitempty"`

	// Relays are the relays allowed to call /v1/wake. Default none: every
	// wake is refused with 401.
	Relays []Relay `json:"relays,omitempty"`

	// Limits bound what the bridge does for its callers.
	Limits Limits `json:"limits,omitzero"`

	// PushTTL is how long a push service keeps an undelivered wake-up for
	// an offline device. Default 24h.
	PushTTL Duration `json:"push_ttl,omitzero"`

	// LogLevel is debug, info, warn or error (cmd/hush-pushbridge only).
	// Default info.
	LogLevel string `json:"log_level,omitempty"`

	// NoSync skips the fsync after a tombstone is written. Default false.
	// Only for tests and benchmarks.
	NoSync bool `json:"no_sync,omitempty"`

	// APNs, FCM and WebPush configure the senders (cmd/hush-pushbridge
	// builds them; the bridge itself takes ready senders). A nil section
	// leaves that service off.
	APNs    *APNsConfig    `json:"apns,omitempty"`
	FCM     *FCMConfig     `json:"fcm,omitempty"`
	WebPush *WebPushConfig `json:"webpush,omitempty"`

	// Logger receives the bridge's events: counts, provider kinds, HTTP
	// statuses and the services' reason codes; never a token, handle,
	// code or registration ID. Default: discarded.
	Logger *slog.Logger `json:"-"`
}

// Relay is one relay allowed to call /v1/wake. The relay sends
// "Authorization: Bearer <token>"; the bridge keeps only the token's
// SHA-256.
type Relay struct {
	// Name identifies the relay in the bridge's logs. Required.
	Name string `json:"name"`
	// TokenSHA256 is the hex SHA-256 of the relay's bearer token (64 hex
	// digits). `hush-pushbridge --new-relay-token` makes a token and
	// prints both. Required.
	TokenSHA256 string `json:"token_sha256"`
}

// Limits bound the bridge's work. Zero fields take their defaults; a
// negative rate switches that limit off.
type Limits struct {
	// CoalesceWindow: after a wake-up is delivered to a handle, further
	// wakes for it within the window are merged into one more wake-up at
	// the window's end. Default 30s; "off" sends every wake.
	CoalesceWindow Duration `json:"coalesce_window,omitzero"`
	// HandlePerMinute and HandleBurst limit the pushes started by wake
	// calls for one handle (a token bucket). Default 6 a minute, burst 3.
	HandlePerMinute float64 `json:"handle_per_minute,omitempty"`
	HandleBurst     int     `json:"handle_burst,omitempty"`
	// GlobalPerSecond and GlobalBurst limit all pushes started by wake
	// calls together. Default 200 a second, burst 400.
	GlobalPerSecond float64 `json:"global_per_second,omitempty"`
	GlobalBurst     int     `json:"global_burst,omitempty"`
	// RegisterPerHour limits verification pushes to one token. Default 6.
	RegisterPerHour float64 `json:"register_per_hour,omitempty"`
	// MaxRetries is how many times a push the service answered "busy" is
	// tried again before it is dropped. Default 4.
	MaxRetries int `json:"max_retries,omitempty"`
	// RetryQueue is the most handles that may wait for a retry or for
	// their coalesced wake-up; beyond it new ones are dropped. Default
	// 10,000.
	RetryQueue int `json:"retry_queue,omitempty"`
	// SendTimeout bounds one attempt at a push service. Default 10s.
	SendTimeout Duration `json:"send_timeout,omitzero"`
	// MaxSends is the most attempts in flight at once. Default 64.
	MaxSends int `json:"max_sends,omitempty"`
	// MaxHandlesPerWake is the most handles one wake call may carry.
	// Default 500.
	MaxHandlesPerWake int `json:"max_handles_per_wake,omitempty"`
	// MaxPending is the most registrations waiting for verification.
	// Default 10,000.
	MaxPending int `json:"max_pending,omitempty"`
}

// APNsConfig configures the APNs sender (token authentication over
// HTTP/2).
type APNsConfig struct {
	// Endpoint is the APNs host. Default https://api.push.apple.com
	// (https://api.sandbox.push.apple.com for development builds).
	Endpoint string `json:"endpoint,omitempty"`
	// KeyFile is the .p8 signing key from Apple. Required.
	KeyFile string `json:"key_file"`
	// KeyID and TeamID name the key and the developer team (the JWT's
	// kid and iss). Required.
	KeyID  string `json:"key_id"`
	TeamID string `json:"team_id"`
	// Topic is the app's bundle ID (apns-topic). Required.
	Topic string `json:"topic"`
}

// FCMConfig configures the FCM HTTP v1 sender.
type FCMConfig struct {
	// CredentialsFile is the service-account JSON; its project_id and
	// token_uri are used. Required.
	CredentialsFile string `json:"credentials_file"`
	// Endpoint is the FCM host. Default https://fcm.googleapis.com.
	Endpoint string `json:"endpoint,omitempty"`
}

// WebPushConfig configures the WebPush (RFC 8030/8291/8292) sender, which
// also serves UnifiedPush distributors.
type WebPushConfig struct {
	// VAPIDPrivateKey and VAPIDPublicKey are the bridge's VAPID key pair
	// (base64url, as web-push tools print them). Required.
	VAPIDPrivateKey string `json:"vapid_private_key"`
	VAPIDPublicKey  string `json:"vapid_public_key"`
	// Subscriber is the VAPID contact (mailto: or https: URL). Required.
	Subscriber string `json:"subscriber"`
	// AllowPrivate lets subscriptions name http endpoints and private,
	// loopback or link-local addresses. Default false (an SSRF guard);
	// only for tests and self-hosted distributors on a LAN.
	AllowPrivate bool `json:"allow_private,omitempty"`
}

// Defaults.
const (
	DefaultListen            = "127.0.0.1:8470"
	DefaultCoalesceWindow    = 30 * time.Second
	DefaultPushTTL           = 24 * time.Hour
	DefaultHandlePerMinute   = 6
	DefaultHandleBurst       = 3
	DefaultGlobalPerSecond   = 200
	DefaultGlobalBurst       = 400
	DefaultRegisterPerHour   = 6
	DefaultMaxRetries        = 4
	DefaultRetryQueue        = 10_000
	DefaultSendTimeout       = 10 * time.Second
	DefaultMaxSends          = 64
	DefaultMaxHandlesPerWake = 500
	DefaultMaxPending        = 10_000
)

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.CoalesceWindow == 0 {
		l.CoalesceWindow = Duration(DefaultCoalesceWindow)
	}
	if l.HandlePerMinute == 0 {
		l.HandlePerMinute = DefaultHandlePerMinute
	}
	if l.HandleBurst <= 0 {
		l.HandleBurst = DefaultHandleBurst
	}
	if l.GlobalPerSecond == 0 {
		l.GlobalPerSecond = DefaultGlobalPerSecond
	}
	if l.GlobalBurst <= 0 {
		l.GlobalBurst = DefaultGlobalBurst
	}
	if l.RegisterPerHour == 0 {
		l.RegisterPerHour = DefaultRegisterPerHour
	}
	if l.MaxRetries <= 0 {
		l.MaxRetries = DefaultMaxRetries
	}
	if l.RetryQueue <= 0 {
		l.RetryQueue = DefaultRetryQueue
	}
	if l.SendTimeout <= 0 {
		l.SendTimeout = Duration(DefaultSendTimeout)
	}
	if l.MaxSends <= 0 {
		l.MaxSends = DefaultMaxSends
	}
	if l.MaxHandlesPerWake <= 0 {
		l.MaxHandlesPerWake = DefaultMaxHandlesPerWake
	}
	if l.MaxPending <= 0 {
		l.MaxPending = DefaultMaxPending
	}
	return l
}

// relayCredential is a Relay with its decoded token hash.
type relayCredential struct {
	name string
	hash [sha256.Size]byte
}

func (c Config) relayCredentials() ([]relayCredential, error) {
	var out []relayCredential
	for i, r := range c.Relays {
		if r.Name == "" {
			return nil, fmt.Errorf("pushbridge: config: relays[%d]: name is empty", i)
		}
		h, err := hex.DecodeString(r.TokenSHA256)
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("pushbridge: config: relay %q: token_sha256 must be 64 hex digits", r.Name)
		}
		out = append(out, relayCredential{name: r.Name, hash: [sha256.Size]byte(h)})
	}
	return out, nil
}

// LoadConfig reads a JSON config file. Unknown fields are an error.
func LoadConfig(path string) (Config, error) {
	var cfg Config
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if _, err := cfg.relayCredentials(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("30s", "10m", "24h"); "off" is -1.
type Duration time.Duration

// Off is the Duration "off".
const Off Duration = -1

func (d Duration) MarshalJSON() ([]byte, error) {
	if d < 0 {
		return []byte(`"off"`), nil
	}
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`duration must be a string such as "30s" or "off"`)
	}
	if strings.EqualFold(s, "off") {
		*d = Off
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = Duration(v)
	return nil
}
