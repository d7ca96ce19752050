package sfu

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobuzz/live/internal/id"
	"github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// Handing a viewer's connection over from Pion. Once a WHEP viewer's
// connection is up and its packets take the lean path (lean.go), what Pion
// still does for it is small: answer the viewer's ICE consent checks,
// decrypt its RTCP, notice when it goes away. For that a Pion
// PeerConnection keeps 13 goroutines and about 120 KiB per viewer (their
// stacks, the ICE agent, the DTLS connection, two SRTP sessions and their
// buffers, the demultiplexer; docs/benchmarks.md section 2). So once the
// viewer has shown that its side of the handshake is done (its first SRTCP
// packet decrypted), the engine takes the connection over, closes Pion's
// and lets it go:
//
//   - the viewer's packets are taken off the engine's socket before Pion's
//     UDP mux sees them (muxConn): STUN binding requests are answered with
//     the connection's ICE credentials (RFC 8445 section 7.3, RFC 7675
//     consent), SRTCP is decrypted with the viewer's key (kept from the
//     DTLS handshake) and handled as before, a DTLS alert (the viewer
//     closing) ends the session unless authenticated packets follow it;
//   - nothing Pion's teardown would send reaches the viewer (the same
//     socket wrapper drops it), so the viewer sees no change;
//   - when the session ends, the viewer is told as Pion would tell it: an
//     RTCP BYE, then a DTLS close_notify made from the connection's DTLS
//     state, kept once Pion's connection is closed (closenotify.go);
//   - sender reports are encrypted with the connection's key, their SRTCP
//     index carried on from Pion's;
//   - a viewer silent for handoffTimeout (no consent check with its
//     credentials, no SRTCP that decrypts: only authenticated packets
//     count) has failed, as Pion's ICE timeouts would have decided;
//   - an ICE restart (WHEP PATCH) gets new credentials, and the pair moves
//     to the address the viewer nominates with them once that address has
//     answered a check of ours (pathcheck.go): media never goes to an
//     address that has not answered.
//
// Only WHEP viewers are handed over: a viewer of the WebSocket protocol is
// renegotiated as tracks come and go, which needs Pion's connection. A
// relay to another node, a connection on ICE-TCP or TURN (not on the
// engine's sockets) and one whose packets went through Pion after the
// handshake stay with Pion too.

// handoffTimeout is how long a handed-over viewer may stay silent: Pion's
// disconnected and failed timeouts together (engine.go).
// handoffAlertGrace is how long after a DTLS alert a viewer that sends
// nothing authenticated is taken to have closed: longer than the gap
// between a browser's consent checks and receiver reports (an audio-only
// viewer reports every 5 s, checks every 2.5-5 s). The engine's
// handedOffSet holds both (tests shorten them).
const (
	handoffTimeout    = 15 * time.Second
	handoffAlertGrace = 6 * time.Second
)

// handedOffSet is the engine's viewer connections served without Pion, by
// the socket and the peer address of their pair.
type handedOffSet struct {
	n  atomic.Int32 // len(m), read on every packet of the engine's sockets
	mu sync.RWMutex
	m  map[handoffKey]*handedOff
	// Connections in an ICE restart, by their new ufrag: a check from an
	// address not yet known is theirs if it names one.
	restarting atomic.Int32
	byUfrag    map[string]*handedOff
	// Addresses a connection checks before moving its pair there
	// (pathcheck.go): their answers are the connection's.
	probing atomic.Int32 // len(byProbe)
	byProbe map[handoffKey]*handedOff
	// handoffTimeout and handoffAlertGrace, in nanoseconds.
	silence, alertGrace atomic.Int64
	// WHEP connections parked until their first check (park.go).
	parked parkedSet
	// resumedAt is monoNow when the silence checker last found that its
	// tick came far later than scheduled (the process was stopped):
	// silence is counted from then at the earliest (silence.go).
	resumedAt atomic.Int64
}

type handoffKey struct {
	sock *mediaSocket
	ap   netip.AddrPort // canonicalAddrPort
}

func (s *handedOffSet) setDefaults() {
	s.silence.Store(int64(handoffTimeout))
	s.alertGrace.Store(int64(handoffAlertGrace))
}

// get returns the connection of the pair from sock to ap (canonical).
func (s *handedOffSet) get(sock *mediaSocket, ap netip.AddrPort) *handedOff {
	s.mu.RLock()
	h := s.m[handoffKey{sock, ap}]
	s.mu.RUnlock()
	return h
}

// put files h under k, replacing what was there (a peer address that a
// closed connection left behind).
func (s *handedOffSet) put(k handoffKey, h *handedOff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	file(&s.m, k, h)
	s.n.Store(int32(len(s.m)))
}

// remove takes h out from under k (if it is still there).
func (s *handedOffSet) remove(k handoffKey, h *handedOff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unfile(s.m, k, h)
	s.n.Store(int32(len(s.m)))
}

func (s *handedOffSet) putUfrag(ufrag string, h *handedOff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	file(&s.byUfrag, ufrag, h)
}

func (s *handedOffSet) removeUfrag(ufrag string, h *handedOff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unfile(s.byUfrag, ufrag, h)
}

func file[K comparable](m *map[K]*handedOff, k K, h *handedOff) {
	if *m == nil {
		*m = map[K]*handedOff{}
	}
	(*m)[k] = h
}

func unfile[K comparable](m map[K]*handedOff, k K, h *handedOff) {
	if m[k] == h {
		delete(m, k)
	}
}

// byCheck returns the connection a STUN binding request names by the
// ufrag of an ICE restart, or nil.
func (s *handedOffSet) byCheck(pkt []byte) *handedOff {
	if !stun.IsMessage(pkt) {
		return nil
	}
	m := &stun.Message{Raw: pkt}
	var user stun.Username
	if m.Decode() != nil || m.Type != stun.BindingRequest || user.GetFrom(m) != nil {
		return nil
	}
	local, _, _ := strings.Cut(string(user), ":")
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byUfrag[local]
}

// handedOff is one viewer connection served without Pion.
type handedOff struct {
	s      *Subscriber
	set    *handedOffSet
	lastIn atomic.Int64 // monoNow of the viewer's last authenticated packet (a check with its credentials, SRTCP that decrypts)
	// alertAt is monoNow of a DTLS alert from the viewer's address. It
	// cannot be verified here (the DTLS keys stay in Pion's closed
	// connection), and anyone can send a packet from a spoofed address:
	// the session ends when no authenticated packet follows it for
	// handoffAlertGrace.
	alertAt atomic.Int64
	gone    atomic.Bool

	mu          sync.Mutex // the fields below
	key         handoffKey
	ufrag, pwd  string // ours
	remoteUfrag string
	remotePwd   string      // the viewer's: our own checks carry it (pathcheck.go)
	tieBreaker  uint64      // our ICE-CONTROLLED value in those checks
	probes      []pathProbe // our checks of addresses the viewer nominated, at most maxPathProbes
	nominee     handoffKey  // the address last nominated, until the pair moves there
	old         *iceCreds   // an ICE restart's previous credentials, valid until the new ones are used
	candidates  []string    // our candidates, as an ICE restart's answer gives them
	in          *srtp.Context
	buf         []byte

	outMu sync.Mutex
	out   *srtp.Context
	obuf  []byte

	// The DTLS state a close_notify is sent with (closenotify.go), taken
	// once Pion's connection is closed (pionClosed).
	dtls       atomic.Pointer[dtls.State]
	pionClosed chan struct{}
	goodbye    sync.Once
}

type iceCreds struct{ ufrag, pwd, remoteUfrag string }

// handoffAfter is how long a connection runs in Pion before it is handed
// over: past a join storm's handshakes and first keyframes, which the
// hand-over's work (closing Pion's connection) would otherwise compete
// with. handoffsPerRound bounds the hand-overs of one sender-report round
// (one a second), for the same reason.
const (
	handoffAfter        = 2 * time.Second
	handoffAfterRestart = 10 * time.Second
	handoffsPerRound    = 25
)

// readyForHandOver reports whether the connection can be handed over from
// Pion now (mono: monoNow): a WHEP viewer whose packets take the lean path
// on one of the engine's sockets, up for handoffAfter, whose feedback
// Pion's SRTCP session has decrypted (the viewer's side of the handshake
// is done: it will not need a DTLS retransmission).
func (s *Subscriber) readyForHandOver(mono int64) bool {
	if !s.handoverOK.Load() || !s.rtcpSeen.Load() || s.handingOver.Load() {
		return false
	}
	if at := s.connectedAt.Load(); at == 0 || mono-at < int64(handoffAfter) {
		return false
	}
	// Not while Pion restarts ICE (its checks with the new credentials
	// would reach a closed agent): its state says checking, and the pair
	// is given time to settle after.
	if at := s.restartedAt.Load(); at != 0 && mono-at < int64(handoffAfterRestart) {
		return false
	}
	if st := s.pc.ICEConnectionState(); st != webrtc.ICEConnectionStateConnected && st != webrtc.ICEConnectionStateCompleted {
		return false
	}
	l := s.link
	if l == nil || l.keys.Load() == nil || !l.started.Load() || l.viaPion.Load() || l.lost.Load() {
		return false
	}
	p := l.path.Load()
	return p != nil && !p.sock.dual
}

// handOver takes the connection over from Pion and closes Pion's (on
// the sender-report loop's goroutine).
func (s *Subscriber) handOver() {
	if !s.handingOver.CompareAndSwap(false, true) {
		return
	}
	l := s.link
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	pc := s.pc
	dt := pc.SCTP().Transport()
	it := dt.ICETransport()
	lp, err := it.GetLocalParameters()
	var rp webrtc.ICEParameters
	if err == nil {
		rp, err = it.GetRemoteParameters()
	}
	// The keys the link got when the connection came up (the DTLS
	// handshake does not run again): the hand-over reads nothing of Pion's
	// internals (dtlskeys.go).
	keys := l.keys.Load()
	if err == nil && keys == nil {
		err = errors.New("the connection has no SRTP keys")
	}
	path := l.path.Load()
	if err == nil && (path == nil || l.viaPion.Load() || l.lost.Load()) {
		err = fmt.Errorf("the pair is not on the engine's sockets")
	}
	var h *handedOff
	if err == nil {
		h, err = newHandedOff(s, keys)
	}
	// Pion's DTLS connection, whose state a close_notify needs when the
	// session ends (closenotify.go). Without it the session is still
	// handed over: its end is then silent, as before.
	dc, dcErr := pionDTLS.conn(dt)
	if err == nil && dcErr != nil {
		s.e.log.Debug("a handed-over viewer's end will not be announced", "err", dcErr)
	}
	if err != nil {
		s.mu.Unlock()
		s.e.log.Debug("viewer connection stays with Pion", "err", err)
		return
	}
	h.key = handoffKey{path.sock, canonicalAddrPort(path.ap)}
	h.ufrag, h.pwd = lp.UsernameFragment, lp.Password
	h.remoteUfrag, h.remotePwd = rp.UsernameFragment, rp.Password
	if ld := pc.LocalDescription(); ld != nil {
		if f, err := iceFragmentOf(ld.SDP); err == nil {
			h.candidates = f.Candidates
		}
	}
	h.lastIn.Store(monoNow())
	// Sender reports go on from the SRTCP index Pion's session reached:
	// it encrypted at most one packet per report sent.
	s.rtcpMu.Lock()
	s.ssrcMu.RLock()
	for ssrc := range s.ssrcs {
		h.out.SetIndex(ssrc, uint32(s.rtcpWrites))
	}
	s.ssrcMu.RUnlock()
	l.handedOver.Store(true)
	s.handed.Store(h)
	s.rtcpMu.Unlock()
	s.e.handedOff.put(h.key, h)
	s.mu.Unlock()

	s.e.stats.handedOver.Add(1)

	// Pion's connection is closed on a goroutine of its own: were its
	// teardown ever slow, the sender-report loop (every viewer's reports
	// and silence checks) must not wait for it.
	go func() {
		// The ICE transport first: Pion's DTLS close then has no way out
		// (and the socket drops what it would send anyway).
		_ = it.Stop()
		_ = pc.Close()
		// Its DTLS state, now that Pion sends no more records.
		h.keepDTLS(dc)
		// Nothing of it is needed any more: let it go (its ICE agent,
		// DTLS connection, SRTP sessions and buffers).
		s.mu.Lock()
		s.rtcpMu.Lock()
		s.pc = nil
		for _, sub := range s.subs {
			sub.sender = nil
			if b := sub.dt.bind.Load(); b != nil {
				sub.dt.bind.Store(&binding{ssrc: b.ssrc, pt: b.pt})
			}
		}
		s.rtcpMu.Unlock()
		s.mu.Unlock()
	}()
}

func newHandedOff(s *Subscriber, k *leanKeys) (*handedOff, error) {
	in, err := srtp.CreateContext(k.remoteKey, k.remoteSalt, k.profile, srtp.SRTCPReplayProtection(256))
	if err != nil {
		return nil, err
	}
	out, err := srtp.CreateContext(k.key, k.salt, k.profile)
	if err != nil {
		return nil, err
	}
	return &handedOff{s: s, set: &s.e.handedOff, in: in, out: out, buf: make([]byte, 1500), obuf: make([]byte, 1500),
		tieBreaker: rand.Uint64(), pionClosed: make(chan struct{})}, nil
}

// receive handles a packet of the viewer's (on the socket's reading
// goroutine, the mux's: it must not block). pkt is reused afterwards.
func (h *handedOff) receive(pkt []byte, sock *mediaSocket, from netip.AddrPort) {
	if len(pkt) == 0 || h.gone.Load() {
		return
	}
	switch b := pkt[0]; {
	case b < 4:
		if len(pkt) >= 2 && pkt[0] == 0x01 && pkt[1] == 0x01 { // a binding success response
			h.answered(pkt, sock, from)
			return
		}
		h.answerCheck(pkt, sock, from)
	case b >= 20 && b <= 63:
		// After the handshake a viewer sends DTLS only to close: an alert
		// (close_notify, or a fatal one).
		if b == 21 {
			h.alertAt.CompareAndSwap(0, monoNow())
		}
	case b >= 128 && b <= 191:
		if len(pkt) >= 8 && pkt[1] >= 192 && pkt[1] <= 223 {
			h.readRTCP(pkt)
		}
	}
}

// answerCheck answers an ICE connectivity or consent check that carries
// the connection's credentials (or an ICE restart's new ones). A check
// nominating a new address with the new credentials moves the pair there.
func (h *handedOff) answerCheck(pkt []byte, sock *mediaSocket, from netip.AddrPort) {
	m := &stun.Message{Raw: pkt}
	if err := m.Decode(); err != nil || m.Type != stun.BindingRequest {
		return
	}
	var user stun.Username
	if user.GetFrom(m) != nil {
		return
	}
	h.mu.Lock()
	pwd, current := "", false
	switch string(user) {
	case h.ufrag + ":" + h.remoteUfrag:
		pwd, current = h.pwd, true
	default:
		if o := h.old; o != nil && string(user) == o.ufrag+":"+o.remoteUfrag {
			pwd = o.pwd
		}
	}
	h.mu.Unlock()
	if pwd == "" || stun.NewShortTermIntegrity(pwd).Check(m) != nil {
		return
	}
	h.lastIn.Store(monoNow())
	if current {
		if m.Contains(stun.AttrUseCandidate) {
			h.nominated(sock, from)
		} else {
			h.checkedFrom(sock, from)
		}
	}
	resp, err := stun.Build(m, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
		stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	if err != nil {
		return
	}
	_, _ = sock.conn.WriteToUDPAddrPort(resp.Raw, sockAddr(sock, from))
}

// sockAddr is peer address a as sock's family writes to it.
func sockAddr(sock *mediaSocket, a netip.AddrPort) netip.AddrPort {
	if !sock.local.Addr().Is4() && a.Addr().Is4() {
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
	}
	return a
}

// restart is an ICE restart of a handed-over connection: the viewer's new
// credentials, and new ones of ours, which the answer carries with our
// candidates. Checks with the old credentials are answered until the new
// ones are used.
func (h *handedOff) restart(ufrag, pwd string) (ICEFragment, error) {
	if err := checkICECredentials(ufrag, pwd); err != nil {
		return ICEFragment{}, err
	}
	// Hex is ice-char; the password carries 128 random bits (RFC 8839
	// asks for at least 128), the ufrag 64.
	lu, lp := id.New("")[:16], id.New("")
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropOldLocked()
	h.set.restarting.Add(1)
	h.old = &iceCreds{ufrag: h.ufrag, pwd: h.pwd, remoteUfrag: h.remoteUfrag}
	h.ufrag, h.pwd, h.remoteUfrag, h.remotePwd = lu, lp, ufrag, pwd
	h.dropProbesLocked() // checks with the previous credentials
	h.nominee = handoffKey{}
	h.set.putUfrag(lu, h)
	return ICEFragment{Ufrag: lu, Pwd: lp, Candidates: append([]string(nil), h.candidates...)}, nil
}

// readRTCP decrypts and handles the viewer's feedback.
func (h *handedOff) readRTCP(pkt []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	plain, err := h.in.DecryptRTCP(h.buf[:0], pkt, nil)
	if err != nil {
		return
	}
	h.lastIn.Store(monoNow())
	pkts, err := rtcp.Unmarshal(plain)
	if err != nil {
		return
	}
	h.s.handleRTCP(pkts, time.Now())
}

// writeRTCP encrypts and sends RTCP to the viewer.
func (h *handedOff) writeRTCP(pkts []rtcp.Packet) error {
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		return err
	}
	h.outMu.Lock()
	defer h.outMu.Unlock()
	ct, err := h.out.EncryptRTCP(h.obuf[:0], raw, nil)
	if err != nil {
		return err
	}
	p := h.s.link.path.Load()
	_, err = p.sock.conn.WriteToUDPAddrPort(ct, p.ap)
	return err
}

// fail ends the session: the viewer closed (an alert), or went silent
// (counted as an ICE failure of an established connection).
func (h *handedOff) fail(silent bool) {
	if h.gone.Swap(true) {
		return
	}
	s := h.s
	if silent {
		s.e.q.ice[ICERoleViewer][ICEStageEstablished].Add(1)
	}
	go func() {
		s.failed.Do(func() {
			if s.events.OnFailed != nil {
				s.events.OnFailed()
			}
		})
		_ = s.Close()
	}()
}

// release takes h out of the engine's set (the session closed), once the
// viewer has been told (closenotify.go): while h is in the set, nothing of
// Pion's teardown reaches the viewer.
func (h *handedOff) release() {
	h.gone.Store(true)
	h.sayGoodbye()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.set.remove(h.key, h)
	h.set.removeUfrag(h.ufrag, h)
	h.dropOldLocked()
	h.dropProbesLocked()
}

// dropOldLocked ends an ICE restart's grace for the previous credentials.
// h.mu is held.
func (h *handedOff) dropOldLocked() {
	if h.old == nil {
		return
	}
	h.set.removeUfrag(h.old.ufrag, h)
	h.old = nil
	h.set.restarting.Add(-1)
}

// checkSilence fails a handed-over connection silent for handoffTimeout.
// One that sent a DTLS alert and nothing authenticated since, for
// handoffAlertGrace, has closed. Neither is counted from before the
// process last resumed from a stall (senderreport.go): the viewer's
// packets of that time may still wait in the socket. Checks of ours that
// went unanswered are let go.
func (h *handedOff) checkSilence(now int64) {
	h.expireProbes(now)
	resumed := h.set.resumedAt.Load()
	if a := h.alertAt.Load(); a != 0 {
		switch {
		case h.lastIn.Load() > a:
			h.alertAt.CompareAndSwap(a, 0) // it is still there: not its alert
		case now-max(a, resumed) >= h.set.alertGrace.Load():
			h.fail(false)
			return
		}
	}
	if now-max(h.lastIn.Load(), resumed) > h.set.silence.Load() {
		h.fail(true)
	}
}
