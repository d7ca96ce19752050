package signaling

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// A full node (node.max_viewers, node.max_cpu; room/admission.go) sends a
// new participant to the least loaded node of its region that takes
// clients, as a drain does: WHIP and WHEP get 307 Temporary Redirect to the
// same path there (RFC 9725 section 4.5 lets a WHIP endpoint redirect; WHEP
// players follow it the same way), a WebSocket client a `redirect` message
// answering its join (reason "full"), then the socket closes. Without such
// a node the join is refused with node_full: 503 with Retry-After for
// WHIP/WHEP, an error for a WebSocket join (not fatal: the client may join
// again later on the same socket).

// retryAfterFull is the Retry-After of a full node's 503, in seconds.
const retryAfterFull = "5"

// fullTarget returns the URL of path (and query) on the node a full node
// sends new participants to, or "".
func (s *Server) fullTarget(ctx context.Context, path, rawQuery string) string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return onNode(s.rooms.FullTarget(ctx), path, rawQuery)
}

// onNode returns the URL of path (and query) on the node whose public URL
// is base (a path prefix of base is kept), or "" when base is "" or no
// URL.
func onNode(base, path, rawQuery string) string {
	if base == "" {
		return ""
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || u.Host == "" {
		return ""
	}
	u.Path += path
	u.RawQuery = rawQuery
	return u.String()
}

// refuseFull answers a WHIP or WHEP POST to a full node. The token stays in
// the client's Authorization header, never in the Location.
func (s *Server) refuseFull(w http.ResponseWriter, r *http.Request) {
	if target := s.fullTarget(r.Context(), r.URL.Path, r.URL.RawQuery); target != "" {
		s.metrics.errors.WithLabelValues(CodeNodeFull).Inc()
		w.Header().Set("Location", target)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	w.Header().Set("Connection", "close")
	s.httpError(w, newError(CodeNodeFull, "this node is full; retry in a few seconds"))
}

// refuseFull answers a WebSocket join on a full node: a redirect when the
// cluster has a node for it (then the socket closes), else node_full.
func (c *wsClient) refuseFull(env envelope) error {
	target := c.s.fullTarget(context.Background(), "/ws", "")
	if target == "" {
		return newError(CodeNodeFull, "this node is full; retry in a few seconds")
	}
	c.s.metrics.errors.WithLabelValues(CodeNodeFull).Inc()
	c.enqueue(encode("redirect", env.ID, redirectData{URL: wsURL(target), Reason: "full"}))
	c.shutdown(websocket.CloseNormalClosure, "redirect")
	return nil
}
