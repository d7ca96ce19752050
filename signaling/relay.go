package signaling

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/auth"
)

// Node-to-node relay requests (room/relay.go). An edge node POSTs its
// receive-only offer to the origin's /relay/{room}?tracks=a,b with a
// short-lived token signed with cluster.secret; the origin answers with the
// tracks. Client tokens are signed with auth.secret, so no client can open
// a relay, and the endpoint can live on a listener of its own
// (cluster.relay_address) that clients never reach.

// relayTokenTTL bounds how long a relay token is valid: it is minted for
// one request.
const relayTokenTTL = time.Minute

// relayIdentity prefixes the node id in a relay token's subject.
const relayIdentity = "node:"

// RelayHandler serves the relay endpoint alone (for the cluster.relay_address
// listener).
func (s *Server) RelayHandler() http.Handler {
	mux := http.NewServeMux()
	s.routeRelay(mux)
	return s.recoverPanics(mux)
}

func (s *Server) routeRelay(mux *http.ServeMux) {
	mux.HandleFunc("POST /relay/{room}", s.handleRelay)
	mux.HandleFunc("DELETE /relay/{room}/{id}", s.handleRelayDelete)
	mux.HandleFunc("/relay/{room}", methodNotAllowed("POST"))
}

// clustered reports whether the node serves relays: it shares a store and
// has a cluster secret.
func (s *Server) clustered() bool {
	return s.cfg.Clustered && s.clusterSigner != nil
}

// relayAuth checks a relay request's token and returns the asking node.
func (s *Server) relayAuth(w http.ResponseWriter, r *http.Request, roomName string) (string, bool) {
	claims, err := s.clusterSigner.Verify(bearer(r), time.Now())
	if err != nil || !strings.HasPrefix(claims.Identity, relayIdentity) || !claims.RoomAllowed(roomName) {
		if err == nil {
			err = auth.ErrClaims
		}
		s.fail(w, r, fmt.Errorf("%w: relay token: %w", auth.ErrMalformed, err))
		return "", false
	}
	return strings.TrimPrefix(claims.Identity, relayIdentity), true
}

func (s *Server) handleRelayDelete(w http.ResponseWriter, r *http.Request) {
	roomName := r.PathValue("room")
	if _, ok := s.relayAuth(w, r, roomName); !ok {
		return
	}
	if !s.rooms.EndRelay(roomName, r.PathValue("id")) {
		s.httpError(w, newError(CodeNotFound, "no such relay"))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleRelay(w http.ResponseWriter, r *http.Request) {
	roomName := r.PathValue("room")
	from, ok := s.relayAuth(w, r, roomName)
	if !ok {
		return
	}
	if s.draining.Load() {
		s.fail(w, r, room.ErrDraining)
		return
	}
	var ids []string
	for _, id := range strings.Split(r.URL.Query().Get("tracks"), ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 || len(ids) > s.cfg.Limits.MaxMediaSections {
		s.httpError(w, newError(CodeBadRequest, fmt.Sprintf("tracks must name 1..%d track ids", s.cfg.Limits.MaxMediaSections)))
		return
	}
	body, e, _ := readBody(w, r, mimeSDP, s.cfg.Limits.MaxSDPBytes)
	if e != nil {
		s.httpError(w, e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	answer, id, err := s.rooms.ServeRelay(ctx, roomName, from, ids, string(body))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", mimeSDP)
	w.Header().Set("Location", "/relay/"+roomName+"/"+id)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// NewRelayDialer returns the room's RelayDialer for this node: it POSTs the
// offer to the origin's relay endpoint (its cluster.relay_address, else its
// public URL) with a relay token signed with cluster.secret.
func NewRelayDialer(cfg Config) (room.RelayDialer, error) {
	signer, err := auth.NewSigner([]byte(cfg.Cluster.Secret))
	if err != nil {
		return nil, fmt.Errorf("signaling: cluster.secret: %w", err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	self := cfg.Node.ID
	token := func(roomName string) (string, error) {
		now := time.Now()
		return signer.Sign(auth.Claims{Identity: relayIdentity + self, Room: roomName,
			Grants: auth.Grants{Subscribe: true}, IssuedAt: now, ExpiresAt: now.Add(relayTokenTTL)})
	}
	return func(ctx context.Context, origin room.NodeInfo, roomName string, ids []string, offer string) (string, func(), error) {
		base := origin.PublicURL
		if origin.RelayAddress != "" {
			base = "http://" + origin.RelayAddress
		}
		if base == "" {
			return "", nil, fmt.Errorf("%w: node %q announces no address", room.ErrRelayUnavailable, origin.ID)
		}
		base = strings.TrimSuffix(base, "/")
		tok, err := token(roomName)
		if err != nil {
			return "", nil, err
		}
		u := base + "/relay/" + url.PathEscape(roomName) + "?tracks=" + url.QueryEscape(strings.Join(ids, ","))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(offer))
		if err != nil {
			return "", nil, err
		}
		req.Header.Set("Content-Type", mimeSDP)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %w", room.ErrRelayUnavailable, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, int64(cfg.Limits.MaxSDPBytes)+1))
		if err != nil {
			return "", nil, fmt.Errorf("%w: %w", room.ErrRelayUnavailable, err)
		}
		if resp.StatusCode != http.StatusCreated {
			return "", nil, fmt.Errorf("%w: origin %s answered %d: %s", room.ErrRelayUnavailable, origin.ID, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		loc := resp.Header.Get("Location")
		hangUp := func() {
			if !strings.HasPrefix(loc, "/relay/") {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			tok, err := token(roomName)
			if err != nil {
				return
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodDelete, base+loc, nil)
			if err != nil {
				return
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			if resp, err := client.Do(req); err == nil {
				_ = resp.Body.Close()
			}
		}
		return string(body), hangUp, nil
	}, nil
}
