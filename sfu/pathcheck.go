package sfu

import (
	"bytes"
	"net"
	"net/netip"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
)

// Moving a handed-over viewer's pair only to an address that answered.
//
// A binding request with the viewer's credentials and USE-CANDIDATE proves
// that its sender knows the credentials, not that it sends from the
// address it names: anyone holding a session (a WHEP viewer restarting its
// own ICE) can send one from a spoofed address. Were media moved on it,
// the server would stream to any address it is told to, a traffic
// reflector. So a nomination from a new address starts a check of our own
// there (RFC 8445 section 7.2.4, with the viewer's credentials), and the
// pair moves only when that address answers it: a success response with
// our transaction id and the viewer's MESSAGE-INTEGRITY, from the address
// we sent to (RFC 8445 section 7.2.5.2.1, symmetric). That answer is the
// peer's consent (RFC 7675). Until then media keeps going to the address
// that last answered.
//
// A connection has at most maxPathProbes checks in flight, each given
// pathProbeTimeout: a flood of nominations from spoofed addresses makes
// the server send at most maxPathProbes checks per pathProbeTimeout, and
// the ones over that are refused. The last address nominated is
// remembered: its next check with the viewer's credentials is checked
// again if nothing is in flight to it (an answer lost, a nomination
// refused while spoofed ones filled the slots; a viewer nominates once).

// pathProbeTimeout is how long a check of a nominated address waits for
// its answer; maxPathProbes bounds a connection's checks in flight.
const (
	pathProbeTimeout = time.Second
	maxPathProbes    = 2
)

// pathProbe is one check of ours in flight.
type pathProbe struct {
	key  handoffKey
	id   [stun.TransactionIDSize]byte
	pwd  string // the viewer's password it carries: its answer carries it too
	sent int64  // monoNow
}

// probePriority is the PRIORITY of our checks: that of a peer-reflexive
// candidate of ours (RFC 8445 section 5.1.2.1; type preference 110), which
// the viewer would learn from the check.
const probePriority = 110<<24 | 65535<<8 | 255

// nominated handles the viewer's nomination (USE-CANDIDATE with its
// current credentials) of the pair from sock to from: on the pair the
// media takes, the restart's old credentials are done with; elsewhere the
// address is checked first.
func (h *handedOff) nominated(sock *mediaSocket, from netip.AddrPort) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := handoffKey{sock, from}
	if k == h.key {
		h.dropOldLocked()
		return
	}
	if sock.dual && from.Addr().Is4() {
		return // mapped IPv4 stays on Pion's write path (socket.go)
	}
	h.nominee = k
	h.probeLocked(k, monoNow())
}

// checkedFrom handles a check with the viewer's current credentials that
// does not nominate: from the address last nominated, not yet moved to,
// it is a reason to check that address again.
func (h *handedOff) checkedFrom(sock *mediaSocket, from netip.AddrPort) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if k := (handoffKey{sock, from}); k == h.nominee && k != h.key {
		h.probeLocked(k, monoNow())
	}
}

// probeLocked sends our check to k, unless one is in flight there or the
// connection has maxPathProbes in flight (refused). h.mu is held.
func (h *handedOff) probeLocked(k handoffKey, now int64) {
	h.expireProbesLocked(now)
	for _, p := range h.probes {
		if p.key == k {
			return
		}
	}
	st := &h.s.e.stats
	if len(h.probes) >= maxPathProbes {
		st.pathRefused.Add(1)
		return
	}
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(h.remoteUfrag+":"+h.ufrag),
		ice.AttrControlled(h.tieBreaker), ice.PriorityAttr(probePriority),
		stun.NewShortTermIntegrity(h.remotePwd), stun.Fingerprint)
	if err != nil {
		return
	}
	h.probes = append(h.probes, pathProbe{key: k, id: m.TransactionID, pwd: h.remotePwd, sent: now})
	h.set.putProbe(k, h)
	_, _ = k.sock.conn.WriteToUDPAddrPort(m.Raw, sockAddr(k.sock, k.ap))
}

// answered handles a binding success response from sock's peer from: the
// answer to one of our checks moves the pair there. Anything else (an
// unknown transaction, a wrong integrity, an answer from another address
// than the one checked) changes nothing.
func (h *handedOff) answered(pkt []byte, sock *mediaSocket, from netip.AddrPort) {
	m := &stun.Message{Raw: pkt}
	if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := handoffKey{sock, from}
	i := -1
	for j, p := range h.probes {
		if p.key == k && bytes.Equal(p.id[:], m.TransactionID[:]) {
			i = j
			break
		}
	}
	if i < 0 || stun.NewShortTermIntegrity(h.probes[i].pwd).Check(m) != nil {
		return
	}
	if m.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(m) != nil {
		return
	}
	h.lastIn.Store(monoNow())
	h.moveLocked(k)
}

// moveLocked moves the pair (the media and the connection's key) to k;
// the restart's old credentials and every check in flight are done with.
// h.mu is held.
func (h *handedOff) moveLocked(k handoffKey) {
	h.dropOldLocked()
	h.dropProbesLocked()
	h.nominee = handoffKey{}
	if k == h.key {
		return
	}
	old := h.key
	h.key = k
	ap := sockAddr(k.sock, k.ap)
	h.s.link.path.Store(&leanPath{sock: k.sock, addr: net.UDPAddrFromAddrPort(ap), ap: ap})
	h.set.put(k, h)
	h.set.remove(old, h)
	h.s.e.stats.pathMoves.Add(1)
}

// expireProbes counts the checks that went unanswered for
// pathProbeTimeout and lets them go (the silence checker's tick).
func (h *handedOff) expireProbes(now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expireProbesLocked(now)
}

func (h *handedOff) expireProbesLocked(now int64) {
	kept := h.probes[:0]
	for _, p := range h.probes {
		if now-p.sent < int64(pathProbeTimeout) {
			kept = append(kept, p)
			continue
		}
		h.s.e.stats.pathUnanswered.Add(1)
		h.set.removeProbe(p.key, h)
	}
	clear(h.probes[len(kept):])
	h.probes = kept
}

// dropProbesLocked lets every check in flight go, uncounted (the pair
// moved, the credentials changed, the session ended). h.mu is held.
func (h *handedOff) dropProbesLocked() {
	for _, p := range h.probes {
		h.set.removeProbe(p.key, h)
	}
	clear(h.probes)
	h.probes = h.probes[:0]
}

// getProbe returns the connection checking the address ap on sock, or nil.
func (s *handedOffSet) getProbe(sock *mediaSocket, ap netip.AddrPort) *handedOff {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byProbe[handoffKey{sock, ap}]
}

func (s *handedOffSet) putProbe(k handoffKey, h *handedOff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	file(&s.byProbe, k, h)
	s.probing.Store(int32(len(s.byProbe)))
}

func (s *handedOffSet) removeProbe(k handoffKey, h *handedOff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unfile(s.byProbe, k, h)
	s.probing.Store(int32(len(s.byProbe)))
}
