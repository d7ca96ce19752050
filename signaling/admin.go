package signaling

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/halobuzz/live/room"
)

// routeAdmin adds the operator endpoints. Each needs a token with the admin
// grant: 401 without a valid token, 403 with one that lacks the grant.
func (s *Server) routeAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/nodes", s.handleAdminNodes)
}

// adminNodes is the body of GET /admin/nodes.
type adminNodes struct {
	// Node is the id of the node that answered.
	Node string `json:"node"`
	// Nodes are the live nodes of the cluster, sorted by id (this node
	// alone when it serves alone).
	Nodes []room.NodeInfo `json:"nodes"`
}

// admin checks the request's bearer token for the admin grant, answering
// the error itself when it fails.
func (s *Server) admin(w http.ResponseWriter, r *http.Request) bool {
	tok := bearer(r)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="halo-admin"`)
		s.httpError(w, newError(CodeUnauthorized, "a bearer token with the admin grant is required"))
		return false
	}
	claims, err := s.signer.Verify(tok, time.Now())
	if err != nil {
		we := toWire(err)
		logWire(s.log, "admin: token refused", err, we, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="halo-admin", error="invalid_token"`)
		s.httpError(w, we)
		return false
	}
	if !claims.Grants.Admin {
		s.httpError(w, newError(CodeForbidden, "the token lacks the admin grant"))
		return false
	}
	return true
}

func (s *Server) handleAdminNodes(w http.ResponseWriter, r *http.Request) {
	if !s.admin(w, r) {
		return
	}
	nodes, err := s.rooms.Nodes(r.Context())
	if err != nil {
		we := toWire(fmt.Errorf("%w: %w", room.ErrClusterUnavailable, err))
		s.log.Warn("admin: listing the nodes failed", "err", err)
		s.httpError(w, we)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(adminNodes{Node: s.rooms.NodeID(), Nodes: nodes})
}
