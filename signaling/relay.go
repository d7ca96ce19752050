package signaling

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/halobuzz/live/internal/id"
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
// one request, with a unique id (jti) the origin accepts once. The origin
// refuses a relay token that would stay valid longer than this (and the
// clock skew Verify allows) or that has no id.
const relayTokenTTL = 30 * time.Second

// relayIDPrefix starts the id (jti) of a relay token.
const relayIDPrefix = "rt_"

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
	mux.HandleFunc("POST "+trunkPath, s.handleTrunk)
	mux.HandleFunc(trunkPath, methodNotAllowed("POST"))
}

// clustered reports whether the node serves relays: it shares a store and
// has a cluster secret.
func (s *Server) clustered() bool {
	return s.cfg.Clustered && s.clusterSigner != nil
}

// relayAuth checks a relay request's token and returns the asking node. A
// token is good for one request: its id is remembered until it expires and
// a second use is refused (token_replayed).
func (s *Server) relayAuth(w http.ResponseWriter, r *http.Request, roomName string) (string, bool) {
	now := time.Now()
	claims, err := s.clusterSigner.Verify(bearer(r), now)
	if err == nil && (!strings.HasPrefix(claims.Identity, relayIdentity) || claims.Room == trunkTokenRoom || !claims.RoomAllowed(roomName)) {
		err = fmt.Errorf("%w: not a relay token for room %q", auth.ErrClaims, roomName)
	}
	if err == nil && (claims.ID == "" || claims.ExpiresAt.After(now.Add(relayTokenTTL+relayClockSkew))) {
		err = fmt.Errorf("%w: a relay token needs a jti and at most %s of validity", auth.ErrClaims, relayTokenTTL)
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: relay token: %w", auth.ErrMalformed, err))
		return "", false
	}
	from := strings.TrimPrefix(claims.Identity, relayIdentity)
	switch s.relayIDs.use(claims.ID, claims.ExpiresAt, now) {
	case idReplayed:
		s.log.Warn("relay token replayed", "room", roomName, "from", from, "remote", s.clientIP(r))
		s.httpError(w, newError(CodeTokenReplayed, "this relay token was used already: a relay token is good for one request"))
		return "", false
	case idFull:
		s.log.Warn("relay requests refused: too many in flight", "remembered", maxRelayTokenIDs, "from", from)
		s.httpError(w, newError(CodeTooManyRelays, "too many relay requests; retry in a few seconds"))
		return "", false
	}
	return from, true
}

func (s *Server) handleRelayDelete(w http.ResponseWriter, r *http.Request) {
	roomName := r.PathValue("room")
	from, ok := s.relayAuth(w, r, roomName)
	if !ok {
		return
	}
	ref := relayRef{room: roomName, id: r.PathValue("id")}
	// The edge is done with it, whether it still ran or had failed: its
	// slot is free either way.
	s.relays.end(from, ref)
	if !s.rooms.EndRelay(ref.room, ref.id) {
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
	body, e, status := readBody(w, r, mimeSDP, s.cfg.Limits.MaxSDPBytes)
	if e != nil {
		s.bodyError(w, e, status)
		return
	}
	slot, ok := s.relays.reserve(from)
	if !ok {
		s.log.Warn("relay refused: the requesting node holds its cap", "room", roomName, "from", from, "cap", s.relays.max)
		s.httpError(w, newError(CodeTooManyRelays, fmt.Sprintf("node %q holds %d relays from this node already; retry when one ends", from, s.relays.max)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	answer, id, err := s.rooms.ServeRelay(ctx, roomName, from, ids, string(body))
	if err != nil {
		slot.cancel()
		s.fail(w, r, err)
		return
	}
	slot.serve(relayRef{room: roomName, id: id})
	w.Header().Set("Content-Type", mimeSDP)
	w.Header().Set("Location", "/relay/"+roomName+"/"+id)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// relayToken mints the token of one relay request of node for room at now:
// signed with cluster.secret, valid for relayTokenTTL, with an id of its
// own that the origin accepts once.
func relayToken(signer *auth.Signer, node, roomName string, now time.Time) (string, error) {
	// A trunk's token names no room, which the claims allow only with the
	// admin grant; relayAuth refuses it for a room's relay.
	trunk := roomName == trunkTokenRoom
	return signer.Sign(auth.Claims{Identity: relayIdentity + node, Room: roomName, ID: id.New(relayIDPrefix),
		Grants: auth.Grants{Subscribe: true, Admin: trunk}, IssuedAt: now, ExpiresAt: now.Add(relayTokenTTL)})
}

// NewRelayDialer returns the room's RelayDialer for this node: it POSTs the
// offer to the origin's relay endpoint (its cluster.relay_address, else its
// public URL) with a relay token signed with cluster.secret. With an empty
// room it opens a relay trunk (relay_trunk.go).
func NewRelayDialer(cfg Config) (room.RelayDialer, error) {
	signer, err := auth.NewSigner([]byte(cfg.Cluster.Secret))
	if err != nil {
		return nil, fmt.Errorf("signaling: cluster.secret: %w", err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	token := func(roomName string) (string, error) { return relayToken(signer, cfg.Node.ID, roomName, time.Now()) }
	return func(ctx context.Context, origin room.NodeInfo, roomName string, ids []string, offer string) (string, func(), error) {
		base := origin.PublicURL
		if origin.RelayAddress != "" {
			base = "http://" + origin.RelayAddress
		}
		if base == "" {
			return "", nil, fmt.Errorf("%w: node %q announces no address", room.ErrRelayUnavailable, origin.ID)
		}
		base = strings.TrimSuffix(base, "/")
		if roomName == "" {
			return dialTrunk(ctx, client, base, origin, token, offer, cfg.Limits.MaxSDPBytes)
		}
		tok, err := token(roomName)
		if err != nil {
			return "", nil, err
		}
		u := base + "/relay/" + url.PathEscape(roomName) + "?tracks=" + url.QueryEscape(strings.Join(ids, ","))
		answer, loc, err := postOffer(ctx, client, u, tok, offer, cfg.Limits.MaxSDPBytes)
		if err != nil {
			return "", nil, fmt.Errorf("%w: origin %s: %w", room.ErrRelayUnavailable, origin.ID, err)
		}
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
		return answer, hangUp, nil
	}, nil
}

// postOffer POSTs an SDP offer to u with the relay token tok and returns
// the answer and the Location of a 201; any other status is an error
// quoting the origin's answer.
func postOffer(ctx context.Context, client *http.Client, u, tok, offer string, maxBody int) (answer, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(offer))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", mimeSDP)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBody)+1))
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return string(body), resp.Header.Get("Location"), nil
}
