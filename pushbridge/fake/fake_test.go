package fake

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RFC 8291, Appendix A.
func TestDecryptRFC8291Vector(t *testing.T) {
	d := func(s string) []byte {
		b, err := b64.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ua, err := ecdh.P256().NewPrivateKey(d("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ua.PublicKey().Bytes(), d("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4")) {
		t.Fatal("public key mismatch")
	}
	body := d("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
	plain, rs, err := DecryptAES128GCM(body, ua, d("BTBZMqHH6r4Tts7J_aSIgg"))
	if err != nil || rs != 4096 || string(plain) != "When I grow up, I want to be a watermelon" {
		t.Fatalf("got %q, rs %d, %v", plain, rs, err)
	}
	body[len(body)-1] ^= 1
	if _, _, err := DecryptAES128GCM(body, ua, d("BTBZMqHH6r4Tts7J_aSIgg")); err == nil {
		t.Fatal("tampered body decrypted")
	}
}

func post(t *testing.T, c *http.Client, u string, h map[string]string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPNsCatchesWrongRequests(t *testing.T) {
	f, err := StartAPNs(APNsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block, _ := pem.Decode(f.KeyPEM())
	k, _ := x509.ParsePKCS8PrivateKey(block.Bytes)
	sign := func(key any, kid, iss string, iat time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": iss, "iat": iat.Unix()})
		tok.Header["kid"] = kid
		s, _ := tok.SignedString(key)
		return "bearer " + s
	}
	good := sign(k, f.KeyID(), f.TeamID(), time.Now())
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	path := f.URL() + "/3/device/" + strings.Repeat("ab", 32)
	headers := func(kv ...string) map[string]string {
		h := map[string]string{"authorization": good, "apns-topic": f.Topic(), "apns-push-type": "background", "apns-priority": "5"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(h, kv[i])
			} else {
				h[kv[i]] = kv[i+1]
			}
		}
		return h
	}
	bg := []byte(`{"aps":{"content-available":1}}`)
	tests := []struct {
		name, url string
		h         map[string]string
		body      []byte
		status    int
		reason    string
	}{
		{"good", path, headers(), bg, 200, ""},
		{"bad path", f.URL() + "/3/devices/x", headers(), bg, 404, "BadPath"},
		{"short token", f.URL() + "/3/device/abcd", headers(), bg, 400, "BadDeviceToken"},
		{"no auth", path, headers("authorization", ""), bg, 403, "MissingProviderToken"},
		{"wrong key", path, headers("authorization", sign(other, f.KeyID(), f.TeamID(), time.Now())), bg, 403, "InvalidProviderToken"},
		{"wrong kid", path, headers("authorization", sign(k, "OTHERKEY01", f.TeamID(), time.Now())), bg, 403, "InvalidProviderToken"},
		{"wrong team", path, headers("authorization", sign(k, f.KeyID(), "OTHERTEAM1", time.Now())), bg, 403, "InvalidProviderToken"},
		{"old iat", path, headers("authorization", sign(k, f.KeyID(), f.TeamID(), time.Now().Add(-2*time.Hour))), bg, 403, "ExpiredProviderToken"},
		{"future iat", path, headers("authorization", sign(k, f.KeyID(), f.TeamID(), time.Now().Add(time.Hour))), bg, 403, "InvalidProviderToken"},
		{"no topic", path, headers("apns-topic", ""), bg, 400, "MissingTopic"},
		{"push type", path, headers("apns-push-type", "silent"), bg, 400, "InvalidPushType"},
		{"background at 10", path, headers("apns-priority", "10"), bg, 400, "BadPriority"},
		{"expiration", path, headers("apns-expiration", "soon"), bg, 400, "BadExpirationDate"},
		{"collapse id", path, headers("apns-collapse-id", strings.Repeat("c", 65)), bg, 400, "BadCollapseId"},
		{"apns-id", path, headers("apns-id", "NOT-A-UUID"), bg, 400, "BadMessageId"},
		{"empty", path, headers(), nil, 400, "PayloadEmpty"},
		{"large", path, headers(), bytes.Repeat([]byte(" "), 4097), 413, "PayloadTooLarge"},
		{"alert in background", path, headers(), []byte(`{"aps":{"content-available":1,"alert":"hi"}}`), 400, "BadPayload"},
		{"alert without alert", path, headers("apns-push-type", "alert", "apns-priority", "10"), bg, 400, "BadPayload"},
		{"extra key", path, headers(), []byte(`{"aps":{"content-available":1},"sender":"alice"}`), 400, "PayloadPolicy"},
	}
	for _, tt := range tests {
		status, body := post(t, f.Client(), tt.url, tt.h, tt.body)
		if status != tt.status || tt.reason != "" && !strings.Contains(body, `"`+tt.reason+`"`) {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, body, tt.status, tt.reason)
		}
	}
	if f.Requests()[0].Proto != "HTTP/2.0" {
		t.Error("not HTTP/2")
	}
	// An HTTP/1.1 client does not get through.
	h1 := &http.Client{Transport: f.Client().Transport.(*http.Transport).Clone()}
	h1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	h1.Transport.(*http.Transport).Protocols = nil
	req, _ := http.NewRequest(http.MethodPost, path, bytes.NewReader(bg))
	if resp, err := h1.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("HTTP/1.1 request accepted")
		}
	}
}

func TestFCMCatchesWrongRequests(t *testing.T) {
	f, err := StartFCM(FCMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sa struct {
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		ClientEmail  string `json:"client_email"`
	}
	json.Unmarshal(f.ServiceAccountJSON(), &sa)
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	key, _ := x509.ParsePKCS8PrivateKey(block.Bytes)
	assertion := func(mutate func(jwt.MapClaims, map[string]any)) string {
		now := time.Now()
		c := jwt.MapClaims{"iss": sa.ClientEmail, "scope": "https://www.googleapis.com/auth/firebase.messaging",
			"aud": f.TokenURI(), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = sa.PrivateKeyID
		mutate(c, tok.Header)
		s, _ := tok.SignedString(key)
		return s
	}
	token := func(grant, a string) (int, string) {
		form := url.Values{"grant_type": {grant}, "assertion": {a}}
		return post(t, f.Client(), f.TokenURI(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, []byte(form.Encode()))
	}
	jwtBearer := "urn:ietf:params:oauth:grant-type:jwt-bearer"
	for name, tt := range map[string]struct {
		grant  string
		mutate func(jwt.MapClaims, map[string]any)
		want   string
	}{
		"grant":    {"client_credentials", func(jwt.MapClaims, map[string]any) {}, "unsupported_grant_type"},
		"kid":      {jwtBearer, func(_ jwt.MapClaims, h map[string]any) { h["kid"] = "x" }, "invalid_grant"},
		"aud":      {jwtBearer, func(c jwt.MapClaims, _ map[string]any) { c["aud"] = "https://oauth2.googleapis.com/token" }, "invalid_grant"},
		"iss":      {jwtBearer, func(c jwt.MapClaims, _ map[string]any) { c["iss"] = "x@y" }, "invalid_grant"},
		"long exp": {jwtBearer, func(c jwt.MapClaims, _ map[string]any) { c["exp"] = time.Now().Add(2 * time.Hour).Unix() }, "invalid_grant"},
		"expired":  {jwtBearer, func(c jwt.MapClaims, _ map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }, "invalid_grant"},
		"scope":    {jwtBearer, func(c jwt.MapClaims, _ map[string]any) { c["scope"] = "https://www.googleapis.com/auth/datastore" }, "invalid_scope"},
	} {
		if status, body := token(tt.grant, assertion(tt.mutate)); status != 400 || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s", name, status, body)
		}
	}
	status, body := token(jwtBearer, assertion(func(jwt.MapClaims, map[string]any) {}))
	var at struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal([]byte(body), &at)
	if status != 200 || at.AccessToken == "" {
		t.Fatalf("token: %d %s", status, body)
	}

	send := f.URL() + "/v1/projects/" + f.ProjectID() + "/messages:send"
	auth := map[string]string{"Authorization": "Bearer " + at.AccessToken, "Content-Type": "application/json"}
	tok := strings.Repeat("t", 100)
	for name, tt := range map[string]struct {
		url    string
		h      map[string]string
		body   string
		status int
	}{
		"good":         {send, auth, `{"message":{"token":"` + tok + `","data":{"wake":""},"android":{"priority":"high","ttl":"60s"}}}`, 200},
		"no bearer":    {send, map[string]string{"Content-Type": "application/json"}, `{"message":{"token":"` + tok + `"}}`, 401},
		"project":      {f.URL() + "/v1/projects/other/messages:send", auth, `{"message":{"token":"` + tok + `"}}`, 404},
		"legacy":       {send, auth, `{"to":"` + tok + `","data":{"wake":""}}`, 400},
		"two targets":  {send, auth, `{"message":{"token":"` + tok + `","topic":"news"}}`, 400},
		"number data":  {send, auth, `{"message":{"token":"` + tok + `","data":{"n":1}}}`, 400},
		"reserved key": {send, auth, `{"message":{"token":"` + tok + `","data":{"google.x":"1"}}}`, 400},
		"ttl":          {send, auth, `{"message":{"token":"` + tok + `","android":{"ttl":"60"}}}`, 400},
		"long ttl":     {send, auth, `{"message":{"token":"` + tok + `","android":{"ttl":"2419201s"}}}`, 400},
		"priority":     {send, auth, `{"message":{"token":"` + tok + `","android":{"priority":"urgent"}}}`, 400},
		"camelCase":    {send, auth, `{"message":{"token":"` + tok + `","android":{"collapseKey":"w"}}}`, 400},
		"notification": {send, auth, `{"message":{"token":"` + tok + `","notification":{"title":"hi"}}}`, 400},
		"apns prio":    {send, auth, `{"message":{"token":"` + tok + `","apns":{"headers":{"apns-priority":"7"}}}}`, 400},
		"apns no aps":  {send, auth, `{"message":{"token":"` + tok + `","apns":{"payload":{"x":1}}}}`, 400},
	} {
		if status, body := post(t, f.Client(), tt.url, tt.h, []byte(tt.body)); status != tt.status {
			t.Errorf("%s: %d %s", name, status, body)
		}
	}
}

func TestWebPushCatchesWrongRequests(t *testing.T) {
	f, err := StartWebPush(WebPushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sub, _ := f.Subscribe()
	var s struct{ Endpoint string }
	json.Unmarshal([]byte(sub), &s)
	vk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := vk.PublicKey.Bytes()
	vapid := func(aud, sub string, exp time.Time) string {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"aud": aud, "sub": sub, "exp": exp.Unix()}).SignedString(vk)
		return "vapid t=" + tok + ", k=" + b64.EncodeToString(pub)
	}
	good := vapid(f.URL(), "mailto:a@b.example", time.Now().Add(time.Hour))
	h := func(kv ...string) map[string]string {
		m := map[string]string{"TTL": "60", "Authorization": good, "Content-Encoding": "aes128gcm"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	body := bytes.Repeat([]byte{1}, 200) // headers pass, decryption fails
	for name, tt := range map[string]struct {
		url    string
		h      map[string]string
		body   []byte
		status int
	}{
		"unknown":  {f.URL() + "/push/none", h(), body, 404},
		"no TTL":   {s.Endpoint, h("TTL", ""), body, 400},
		"urgency":  {s.Endpoint, h("Urgency", "asap"), body, 400},
		"topic":    {s.Endpoint, h("Topic", strings.Repeat("t", 33)), body, 400},
		"no vapid": {s.Endpoint, h("Authorization", "WebPush x"), body, 403},
		"aud":      {s.Endpoint, h("Authorization", vapid("https://push.example.org", "mailto:a@b.example", time.Now().Add(time.Hour))), body, 403},
		"exp":      {s.Endpoint, h("Authorization", vapid(f.URL(), "mailto:a@b.example", time.Now().Add(25*time.Hour))), body, 403},
		"sub":      {s.Endpoint, h("Authorization", vapid(f.URL(), "a@b.example", time.Now().Add(time.Hour))), body, 403},
		"encoding": {s.Endpoint, h("Content-Encoding", "aesgcm"), body, 400},
		"large":    {s.Endpoint, h(), make([]byte, 4097), 413},
		"garbage":  {s.Endpoint, h(), body, 400},
	} {
		if status, b := post(t, f.Client(), tt.url, tt.h, tt.body); status != tt.status {
			t.Errorf("%s: %d %s", name, status, b)
		}
	}
}
