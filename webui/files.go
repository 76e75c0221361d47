package webui

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/skip2/go-qrcode"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

// inlineImages are the types shown inline (thumbnails, <img>): raster
// images only; anything else, SVG included, is a download.
var inlineImages = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
}

// rpcStatus is the HTTP status for an API error on the UI's own
// endpoints.
func rpcStatus(e *api.Error) int {
	switch e.Code {
	case api.CodeNotFound, api.CodeUnknownContact:
		return http.StatusNotFound
	case api.CodeInvalidParams, api.CodeInvalidInput, api.CodeBadMessage:
		return http.StatusBadRequest
	case api.CodeFile:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// handleFile serves a message's file (?id=): raster images inline with
// their type, anything else (or with ?download=1) as an attachment
// download. The plaintext goes from the encrypted blob to the response.
func (u *UI) handleFile(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	var m apitypes.Message
	if e := u.call(r.Context(), "getMessage", apitypes.IDParams{ID: id}, &m); e != nil {
		httpError(w, rpcStatus(e), e.Message)
		return
	}
	if m.File == nil {
		httpError(w, http.StatusNotFound, "the message has no file")
		return
	}
	if s := m.File.State; s != apitypes.FileDone && s != apitypes.FileSent {
		httpError(w, http.StatusConflict, "the file is not downloaded yet ("+s+")")
		return
	}
	h := w.Header()
	if inlineImages[m.File.MIME] && r.URL.Query().Get("download") == "" {
		h.Set("Content-Type", m.File.MIME)
		h.Set("Content-Disposition", "inline")
	} else {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": m.File.Name}))
	}
	h.Set("Content-Length", fmt.Sprint(m.File.Size))
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	if err := u.cfg.Files.CopyFile(r.Context(), id, bw); err != nil {
		if cw.n == 0 { // nothing sent yet: a clear error
			h.Del("Content-Length")
			h.Del("Content-Disposition")
			httpError(w, http.StatusConflict, err.Error())
			return
		}
		u.log.Warn("serving a file", "err", err) // the short body tells the browser
		return
	}
	bw.Flush()
}

// countWriter counts what reached the response.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// handleUpload sends the request body as a file: ?to=CONTACT or
// ?group=GROUP, ?name= the file's name, ?caption=. The body is held in
// memory (memFile), never in a file on disk, and sent through the
// method table's sendFile (sendGroupFile) from there.
func (u *UI) handleUpload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	to, group, name := q.Get("to"), q.Get("group"), q.Get("name")
	if (to == "") == (group == "") {
		httpError(w, http.StatusBadRequest, "give one of to and group")
		return
	}
	if name == "" {
		httpError(w, http.StatusBadRequest, "name is required")
		return
	}
	if r.ContentLength > u.cfg.MaxUpload {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the file is larger than the web UI's limit of %d bytes", u.cfg.MaxUpload))
		return
	}
	f, path, err := memFile(name)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "holding the upload: "+err.Error())
		return
	}
	defer f.Close()
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, u.cfg.MaxUpload))
	if err != nil {
		httpError(w, http.StatusBadRequest, "reading the upload: "+err.Error())
		return
	}
	if r.ContentLength >= 0 && n != r.ContentLength {
		httpError(w, http.StatusBadRequest, "the upload was cut short")
		return
	}
	var m apitypes.Message
	var e *api.Error
	if group != "" {
		e = u.call(r.Context(), "sendGroupFile", apitypes.GroupFileRequest{Group: group, Path: path, Name: name, Caption: q.Get("caption"), TxnID: q.Get("txnId")}, &m)
	} else {
		e = u.call(r.Context(), "sendFile", apitypes.SendFileRequest{To: to, Path: path, Name: name, Caption: q.Get("caption"), TxnID: q.Get("txnId")}, &m)
	}
	if e != nil {
		httpError(w, rpcStatus(e), e.Message)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(m)
}

// handleQR draws ?text= (at most 4296 bytes, what a QR code holds: a link or a device code) as
// a PNG QR code, on 127.0.0.1: no QR service sees the link.
func (u *UI) handleQR(w http.ResponseWriter, r *http.Request) {
	text := r.URL.Query().Get("text")
	if text == "" || len(text) > 4296 {
		httpError(w, http.StatusBadRequest, "text must be 1 to 4296 bytes (what a QR code holds)")
		return
	}
	png, err := qrcode.Encode(text, qrcode.Low, 320)
	if err != nil {
		httpError(w, http.StatusBadRequest, "QR code: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(png)
}
