package signaling

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/halobuzz/live/room"
)

// The check page's ICE-TCP check (POST /check/ice-tcp): the page offers a
// data channel and the media engine answers with its ICE-TCP candidates
// only, so the connection comes up only if this browser reaches the
// node's ICE-TCP port. Like /check/ice-servers it needs no token and
// counts against the address's joins; the engine bounds how many checks
// run at once and how long each lives.

// maxCheckOffer bounds the check page's offer: one data channel and its
// candidates.
const maxCheckOffer = 16 << 10

// checkTCPTimeout bounds the answer (ICE gathering on the node's ports).
const checkTCPTimeout = 5 * time.Second

// tcpOffered reports whether the check page can try ICE-TCP here.
func (s *Server) tcpOffered() bool { return s.rooms.ICETCPOffered() }

// handleCheckTCP answers the check page's ICE-TCP offer.
func (s *Server) handleCheckTCP(w http.ResponseWriter, r *http.Request) {
	if !s.tcpOffered() {
		s.httpError(w, newError(CodeNotFound, "this node offers no ICE-TCP (sfu.tcp_port is 0)"))
		return
	}
	ip := s.clientIP(r)
	a, _ := netip.ParseAddr(ip)
	if !s.devLoopback(ip) && !s.joins.allow(limitKey(a, ip), time.Now()) {
		w.Header().Set("Retry-After", "60")
		s.httpError(w, newError(CodeRateLimited, "too many checks from this address; try again in a minute"))
		return
	}
	body, e, status := readBody(w, r, "application/sdp", maxCheckOffer)
	if e != nil {
		s.bodyError(w, e, status)
		return
	}
	offer := string(body)
	if !strings.Contains(offer, "m=application") {
		s.httpError(w, newError(CodeInvalidSDP, "the offer must be one data channel (m=application)"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), checkTCPTimeout)
	defer cancel()
	answer, err := s.rooms.CheckICETCP(ctx, offer)
	switch {
	case errors.Is(err, room.ErrInvalidSDP):
		s.httpError(w, newError(CodeInvalidSDP, "the offer was refused: it must parse as SDP with one data channel"))
		return
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		s.httpError(w, newError(CodeMediaFailed, "the node did not make its answer in time"))
		return
	case err != nil:
		w.Header().Set("Retry-After", "10")
		s.httpError(w, newError(CodeRateLimited, "the node is running too many checks; try again in a few seconds"))
		s.log.Debug("check: ICE-TCP check not started", "err", err)
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
}
