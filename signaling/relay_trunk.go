package signaling

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/auth"
)

// The set-up request of a relay trunk (room/relay_trunk.go): an edge node
// POSTs the trunk's first offer (its control channel only) to the origin's
// /relay-trunk with a one-use token signed with cluster.secret, as for a
// room's relay; the origin answers. The DTLS fingerprints and ICE
// credentials travel in this authenticated exchange; tracks are asked for
// over the trunk afterwards. An origin holds one trunk per edge node: a new
// one from the same node replaces the old (the edge restarted or lost it).

// trunkTokenRoom is the room claim of a trunk token: none. A room's relay
// token names its room, so it is never a trunk token; a trunk token, with
// no room and no admin grant, is refused by a room's relay endpoint.
const trunkTokenRoom = ""

// trunkPath is the trunk set-up endpoint, on the relay listener.
const trunkPath = "/relay-trunk"

func (s *Server) handleTrunk(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	claims, err := s.clusterSigner.Verify(bearer(r), now)
	if err == nil && (!strings.HasPrefix(claims.Identity, relayIdentity) || claims.Room != trunkTokenRoom) {
		err = fmt.Errorf("%w: not a trunk token", auth.ErrClaims)
	}
	if err == nil && (claims.ID == "" || claims.ExpiresAt.After(now.Add(relayTokenTTL+relayClockSkew))) {
		err = fmt.Errorf("%w: a relay token needs a jti and at most %s of validity", auth.ErrClaims, relayTokenTTL)
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: relay token: %w", auth.ErrMalformed, err))
		return
	}
	from := strings.TrimPrefix(claims.Identity, relayIdentity)
	switch s.relayIDs.use(claims.ID, claims.ExpiresAt, now) {
	case idReplayed:
		s.log.Warn("relay token replayed", "trunk", true, "from", from, "remote", s.clientIP(r))
		s.httpError(w, newError(CodeTokenReplayed, "this relay token was used already: a relay token is good for one request"))
		return
	case idFull:
		s.log.Warn("relay requests refused: too many in flight", "remembered", maxRelayTokenIDs, "from", from)
		s.httpError(w, newError(CodeTooManyRelays, "too many relay requests; retry in a few seconds"))
		return
	}
	if s.draining.Load() {
		s.fail(w, r, room.ErrDraining)
		return
	}
	body, e, status := readBody(w, r, mimeSDP, s.cfg.Limits.MaxSDPBytes)
	if e != nil {
		s.bodyError(w, e, status)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	answer, err := s.rooms.ServeTrunk(ctx, from, string(body))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", mimeSDP)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// dialTrunk POSTs a trunk's offer to base (the origin's relay endpoint)
// with a trunk token from token.
func dialTrunk(ctx context.Context, client *http.Client, base string, origin room.NodeInfo, token func(string) (string, error), offer string, maxBody int) (string, func(), error) {
	tok, err := token(trunkTokenRoom)
	if err != nil {
		return "", nil, err
	}
	answer, _, err := postOffer(ctx, client, base+trunkPath, tok, offer, maxBody)
	if err != nil {
		return "", nil, fmt.Errorf("%w: origin %s, relay trunk: %w", room.ErrRelayUnavailable, origin.ID, err)
	}
	// The trunk ends with its connection (DTLS close_notify, or ICE): no
	// request to send.
	return answer, func() {}, nil
}
