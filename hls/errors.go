package hls

import (
	"fmt"
	"net/http"
)

// Error codes of /hls/ answers (docs/protocol.md, LL-HLS).
const (
	CodeBadPath          = "hls_bad_path"
	CodeNotFound         = "hls_not_found"
	CodeNoBroadcast      = "hls_no_broadcast"
	CodeCodecUnsupported = "hls_codec_unsupported"
	CodeStarting         = "hls_starting"
	CodeBadSignature     = "hls_bad_signature"
	CodeExpired          = "hls_signature_expired"
	CodeUnavailable      = "hls_unavailable"
)

// Error is an /hls/ answer other than media: an HTTP status, a code a
// program can match, and a sentence for a person.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// write answers the error as "code: message", never cached.
func (e *Error) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.Code == CodeStarting || e.Code == CodeNoBroadcast {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(e.Status)
	_, _ = fmt.Fprintf(w, "%s: %s\n", e.Code, e.Message)
}
