// Package fake runs local stand-ins for the three push services the
// bridge talks to (APNs, FCM HTTP v1 with its OAuth2 token endpoint, and
// a WebPush push service with its receiving user agent), so that senders,
// the bridge and demos can be exercised without the internet.
//
// The fakes are strict: each checks the real wire format (HTTP/2 and the
// provider JWT for APNs, the RS256 assertion and the v1 message shape for
// FCM, VAPID and RFC 8291 aes128gcm for WebPush) and answers a malformed
// request with the service's own error, so a test that passes against a
// fake exercises the format the real service expects. Each fake records
// what it received, decoded (headers, JWT claims, payload, decrypted
// plaintext), counts requests, and can be scripted to answer any failure
// (status, reason, Retry-After) or to hang until the client gives up.
//
// Every fake serves HTTPS on 127.0.0.1 with httptest's certificate: use
// its Client, or trust CertificatePEM (for example through SSL_CERT_FILE).
// The package holds no test assertions and does not import testing, so a
// demo binary can use it too.
package fake
