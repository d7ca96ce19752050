package signaling

import (
	"net/http"
)

// SetHLS gives the node's LL-HLS server (package hls), served at /hls/.
// Without one, /hls/ answers 404 hls_disabled.
func (s *Server) SetHLS(h http.Handler) { s.hls = h }

// routeHLS serves /hls/{room}/... (docs/protocol.md, LL-HLS).
func (s *Server) routeHLS(mux *http.ServeMux) {
	mux.HandleFunc("GET /hls/", func(w http.ResponseWriter, r *http.Request) {
		if s.hls == nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("hls_disabled: this node does not serve HLS (hls.enabled is false)\n"))
			return
		}
		s.hls.ServeHTTP(w, r)
	})
	mux.HandleFunc("/hls/", methodNotAllowed("GET, HEAD"))
}
