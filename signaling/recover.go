package signaling

import (
	"errors"
	"net/http"
	"runtime/debug"
)

// recoverPanics keeps a bug in one request's handler from going unnoticed:
// net/http would recover the panic itself, close the connection without an
// answer and log it through ErrorLog, which is at debug (its other lines are
// TLS handshakes of scanners). Here the client gets 500 internal (when
// nothing was written yet; after a WebSocket upgrade nothing can be), the
// panic is logged at error with its stack and counted in
// halo_signaling_errors_total{code="internal"}, and the node goes on.
// http.ErrAbortHandler, net/http's way to abort a response on purpose, is
// passed on untouched.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.log.Error("request handler panicked", "method", r.Method, "path", r.URL.Path,
				"code", CodeInternal, "panic", v, "stack", string(debug.Stack()))
			s.metrics.errors.WithLabelValues(CodeInternal).Inc()
			http.Error(w, CodeInternal+": "+internalMessage, http.StatusInternalServerError)
		}()
		next.ServeHTTP(w, r)
	})
}
