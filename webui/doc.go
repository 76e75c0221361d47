// Package webui is the web interface `hush daemon` serves on its HTTP
// listener, 127.0.0.1 only (docs/WEBUI.md). It has no API of its own: a
// browser session calls the api package's method table through POST
// /ui/rpc and reads the event stream at /ui/events, as the API's token
// holders do. Around that it owns only what a browser needs: one-time
// login URLs (uiLogin, `hush ui`), the session cookie and its CSRF
// token, the security headers, the embedded assets, QR codes, and file
// upload and download (in memory, so no plaintext reaches the disk).
//
// It is a package of its own so that the mobile build never links its
// assets.
package webui
