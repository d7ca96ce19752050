package signaling

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync"
)

// A pending session is a viewer's media session whose connection is not up
// yet: a WHEP session answered 201, or a WebSocket client's subscriber
// connection offered. The room ends one that does not connect within 10 s
// and counts a viewer only once it is up; these caps bound how many a client
// address, or a room, may hold open at once (limits.pending_sessions_per_ip,
// limits.pending_sessions_per_room), so that bots cannot make a node hold
// thousands of half-open sessions.

// CodeTooManyPending refuses a viewer session while its client address or
// its room has too many sessions whose media connection is not up yet.
// Retryable: WHEP answers 429 with Retry-After; over WebSocket it is not
// fatal.
const CodeTooManyPending = "too_many_pending"

// retryAfterPending is the Retry-After of a refused WHEP session, in
// seconds: pending sessions connect within about a second or end within 10.
const retryAfterPending = "2"

// pendingSessions counts pending sessions per client address key (limitKey:
// an IPv4 address, an IPv6 /64) and per room. An entry is dropped when its
// count returns to 0, so it holds only what is pending now.
type pendingSessions struct {
	maxIP, maxRoom int // 0: no cap
	mu             sync.Mutex
	byIP           map[string]int
	byRoom         map[string]int
}

func newPendingSessions(maxIP, maxRoom int) *pendingSessions {
	return &pendingSessions{maxIP: maxIP, maxRoom: maxRoom, byIP: map[string]int{}, byRoom: map[string]int{}}
}

// pendingSlot is one pending session's place in the counts. Its release is
// idempotent: a session that connects and then ends gives it back once.
type pendingSlot struct{ release func() }

// noSlot is held by what is not counted (a WHIP broadcaster).
var noSlot = &pendingSlot{release: func() {}}

// admit counts one more pending session of ip (a limit key; "" is not
// counted per address) in room, or refuses it when either is at its cap
// (unless force: a session that became pending without asking, such as a
// waiting viewer offered the broadcast that just started, is counted but
// never refused).
func (p *pendingSessions) admit(ip, room string, force bool) (*pendingSlot, *Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !force && ip != "" && p.maxIP > 0 && p.byIP[ip] >= p.maxIP {
		return nil, newError(CodeTooManyPending, fmt.Sprintf(
			"%d viewer sessions from this address are still connecting; retry when one is up", p.maxIP))
	}
	if !force && p.maxRoom > 0 && p.byRoom[room] >= p.maxRoom {
		return nil, newError(CodeTooManyPending, fmt.Sprintf(
			"%d viewer sessions of this room are still connecting; retry in a few seconds", p.maxRoom))
	}
	if ip != "" {
		p.byIP[ip]++
	}
	p.byRoom[room]++
	return &pendingSlot{release: sync.OnceFunc(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if ip != "" {
			if p.byIP[ip]--; p.byIP[ip] <= 0 {
				delete(p.byIP, ip)
			}
		}
		if p.byRoom[room]--; p.byRoom[room] <= 0 {
			delete(p.byRoom, room)
		}
	})}, nil
}

// counts returns the pending sessions of ip and of room, and how many
// addresses and rooms have an entry.
func (p *pendingSessions) counts(ip, room string) (ofIP, ofRoom, ips, rooms int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byIP[ip], p.byRoom[room], len(p.byIP), len(p.byRoom)
}

// pendingKey is the address key a client's pending sessions count under: its
// limit key, or "" (not counted per address) for a loopback client in dev
// mode, as with the other per-IP limits.
func (s *Server) pendingKey(ip string) string {
	if s.devLoopback(ip) {
		return ""
	}
	a, _ := netip.ParseAddr(ip)
	return limitKey(a, ip)
}

// admitWHEP takes a pending slot for a WHEP session of roomName, or answers
// 429 too_many_pending with Retry-After and reports false. A WHIP session
// (a broadcaster) is not counted.
func (s *Server) admitWHEP(w http.ResponseWriter, r *http.Request, kind, roomName string) (*pendingSlot, bool) {
	if kind != "whep" {
		return noSlot, true
	}
	slot, e := s.pending.admit(s.pendingKey(s.clientIP(r)), roomName, false)
	if e != nil {
		s.log.Debug("whep session refused", "code", e.Code, "room", roomName, "remote", s.clientIP(r), "err", e.Message)
		s.metrics.errors.WithLabelValues(e.Code).Inc()
		w.Header().Set("Retry-After", retryAfterPending)
		w.Header().Set("Connection", "close")
		http.Error(w, e.Code+": "+e.Message, http.StatusTooManyRequests)
		return nil, false
	}
	return slot, true
}
