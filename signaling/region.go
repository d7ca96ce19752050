package signaling

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// Region routing (cluster.region_redirect): a client may say where it is,
// with ?region= on /ws, /whip and /whep, or through a header its load
// balancer sets (cluster.region_header). A node of another region that
// knows a live node in the client's region sends it there: WHIP and WHEP
// get 307 Temporary Redirect to the same path on that node (RFC 9725
// clients follow it), WebSocket clients a `redirect` message with the URL,
// then the socket closes. Without a region, in its own region, or with no
// node of that region alive, the client is served here.

// regionTarget returns the URL of the same request on a node of the
// client's region, or "" to serve it here.
func (s *Server) regionTarget(r *http.Request) string {
	if !s.cfg.Cluster.RegionRedirect {
		return ""
	}
	region := strings.TrimSpace(r.URL.Query().Get("region"))
	if region == "" && s.cfg.Cluster.RegionHeader != "" {
		region = strings.TrimSpace(r.Header.Get(s.cfg.Cluster.RegionHeader))
	}
	if region == "" || strings.EqualFold(region, s.rooms.Region()) {
		return ""
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	// "" (no live node of that region, or the registry cannot be read):
	// serve here rather than fail.
	return onNode(s.rooms.NodeIn(ctx, region), r.URL.Path, r.URL.RawQuery)
}

// wsURL turns a node's http(s) URL into the ws(s) URL of the same path.
func wsURL(u string) string {
	switch {
	case strings.HasPrefix(u, "https://"):
		return "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		return "ws://" + strings.TrimPrefix(u, "http://")
	}
	return u
}
