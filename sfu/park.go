package sfu

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// Parking a WHEP viewer's connection until its first connectivity check.
//
// A WHEP player's POST is answered at once, but many players never start
// ICE: bots, a page closed right after its POST, a network that blocks
// the media port. A Pion PeerConnection waiting for them costs about six
// goroutines and 120 KiB each for up to 10 s (room: the pending session's
// expiry). So once the answer is made, the connection is parked: what the
// answer promised is kept (the offer, our ICE credentials, each track's
// SSRC, the DTLS certificate whose fingerprint it carries) and Pion's
// connection is closed. A parked session holds no goroutine and a few KiB:
// its down-tracks, unbound from their tracks, and the offer.
//
// The viewer's first STUN binding request naming our ufrag, on the
// engine's UDP sockets (muxConn) or on ICE-TCP (parkingListener), brings
// the connection back: a new Pion connection with the same credentials
// and certificate answers the same offer with the same tracks in the same
// order, and the down-tracks send under the SSRCs the first answer gave
// (DownTrack.Bind). The viewer cannot tell: its check is handed to the
// new connection's ICE agent (UDP: the socket's reader gives it to Pion's
// mux once the agent listens, kick; TCP: Pion's mux keeps the connection
// until the agent asks for it).

// parkedPlan is what a parked connection's answer promised.
type parkedPlan struct {
	offer      string
	ufrag, pwd string
	cert       webrtc.Certificate
	dts        []*DownTrack // in the order their senders were added
	fired      bool         // the connection is being brought back
}

// parkedSet is the engine's parked connections, by their ICE ufrag. Its
// count is read on every packet of the engine's sockets while any are
// parked.
type parkedSet struct {
	n  atomic.Int32
	mu sync.Mutex
	m  map[string]*Subscriber
}

func (p *parkedSet) put(ufrag string, s *Subscriber) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*Subscriber{}
	}
	p.m[ufrag] = s
	p.n.Store(int32(len(p.m)))
}

func (p *parkedSet) remove(ufrag string, s *Subscriber) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m[ufrag] == s {
		delete(p.m, ufrag)
		p.n.Store(int32(len(p.m)))
	}
}

func (p *parkedSet) get(ufrag []byte) *Subscriber {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[string(ufrag)]
}

// checkUfrag returns our half of a STUN binding request's USERNAME
// ("ours:theirs"), or false when pkt is not a binding request that names
// one. It reads the header and walks the attributes in place: it runs on
// every STUN packet of the engine's sockets while a session is parked, so
// it allocates nothing (the returned bytes are pkt's).
func checkUfrag(pkt []byte) ([]byte, bool) {
	const header = 20
	if len(pkt) < header || !stun.IsMessage(pkt) {
		return nil, false
	}
	// The two top bits are not the type's (Pion's decoder ignores them too).
	if binary.BigEndian.Uint16(pkt[0:2])&0x3fff != stun.BindingRequest.Value() {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(pkt[2:4]))
	if n%4 != 0 || header+n > len(pkt) {
		return nil, false
	}
	attrs := pkt[header : header+n]
	for len(attrs) >= 4 {
		typ := binary.BigEndian.Uint16(attrs[0:2])
		l := int(binary.BigEndian.Uint16(attrs[2:4]))
		if 4+l > len(attrs) {
			return nil, false
		}
		if stun.AttrType(typ) == stun.AttrUsername {
			local, _, _ := bytes.Cut(attrs[4:4+l], []byte{':'})
			return local, true
		}
		attrs = attrs[min(len(attrs), 4+(l+3)&^3):]
	}
	return nil, false
}

// held is a viewer's first check, kept while its connection comes back.
type held struct {
	conn *muxConn
	pkt  []byte
	from netip.AddrPort
}

// wake brings back the parked connection a check on conn names, keeping
// the check for it; it reports false when the check names none (Pion's mux
// then has it). A check that comes while its connection is being brought
// back is dropped: the viewer sends it again.
func (p *parkedSet) wake(pkt []byte, conn *muxConn, from netip.AddrPort) bool {
	ufrag, ok := checkUfrag(pkt)
	if !ok {
		return false
	}
	s := p.get(ufrag)
	if s == nil {
		return false
	}
	var h *held
	if conn != nil {
		h = &held{conn: conn, pkt: append([]byte(nil), pkt...), from: from}
	}
	s.unpark(h)
	return true
}

// parkAfterAnswer parks the connection whose answer was just made, when it
// can be (a WHEP viewer on the lean path: its checks reach the engine's
// sockets). s.mu is not held.
func (s *Subscriber) parkAfterAnswer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	pc := s.pc
	if s.closed || pc == nil || !s.handoverOK.Load() || s.connected {
		return
	}
	rd, ld := pc.RemoteDescription(), pc.LocalDescription()
	if rd == nil || ld == nil {
		return
	}
	ufrag, pwd, err := localICECredentials(pc)
	if err != nil {
		s.e.log.Debug("a WHEP connection is not parked", "err", err)
		return
	}
	plan := &parkedPlan{offer: compactOffer(rd.SDP, ld.SDP), ufrag: ufrag, pwd: pwd, cert: s.cert}
	for _, sender := range pc.GetSenders() {
		dt, ok := sender.Track().(*DownTrack)
		if !ok {
			continue
		}
		encs := sender.GetParameters().Encodings
		if len(encs) != 1 || encs[0].SSRC == 0 {
			return // not one stream per track: stays with Pion
		}
		dt.fixedSSRC = uint32(encs[0].SSRC)
		plan.dts = append(plan.dts, dt)
	}
	s.pcOff.Store(true)
	s.rtcpMu.Lock()
	s.pc = nil
	s.park = plan
	s.rtcpMu.Unlock()
	for _, sub := range s.subs {
		sub.sender = nil
	}
	s.e.handedOff.parked.put(ufrag, s)
	// Closing runs the down-tracks' Unbind (they leave their tracks) and
	// nothing of the session's: the state callbacks ignore a retired
	// connection.
	_ = pc.Close()
	for _, dt := range plan.dts {
		dt.parked()
	}
}

// parked readies a down-track whose connection was parked to be bound
// again: nothing is written to it meanwhile, and once bound it starts on a
// picture.
func (d *DownTrack) parked() {
	d.bind.Store(nil)
	d.mu.Lock()
	d.state = dtWaiting
	d.mu.Unlock()
}

// localICECredentials returns the ICE ufrag and password pc answered
// with, from its local description (Pion's ICE transport is not safe to
// ask while its operations start it).
func localICECredentials(pc *webrtc.PeerConnection) (string, string, error) {
	ld := pc.LocalDescription()
	if ld == nil {
		return "", "", errors.New("no local description")
	}
	f, err := iceFragmentOf(ld.SDP)
	if err != nil {
		return "", "", err
	}
	if f.Ufrag == "" || f.Pwd == "" {
		return "", "", errors.New("no local ICE credentials")
	}
	// Copies: the parsed values share the description's memory.
	return strings.Clone(f.Ufrag), strings.Clone(f.Pwd), nil
}

// unpark brings a parked connection back (h: the check that woke it, nil
// when there is none to pass on) on a goroutine of its own, which ends
// once the new connection listens. It does nothing when the connection is
// not parked or already coming back.
func (s *Subscriber) unpark(h *held) {
	s.mu.Lock()
	plan := s.park
	if plan == nil || plan.fired || s.closed {
		s.mu.Unlock()
		return
	}
	plan.fired = true
	s.mu.Unlock()
	s.e.unparking.Add(1)
	go func() {
		defer s.e.unparking.Done()
		if err := s.restore(context.Background(), plan, h); err != nil {
			s.e.log.Warn("a WHEP viewer's connection could not be brought back", "err", err)
			_ = s.Close()
			s.failed.Do(func() {
				if s.events.OnFailed != nil {
					s.events.OnFailed()
				}
			})
		}
	}()
}

// unparkNow brings a parked connection back and waits for it (an ICE
// restart of a connection that never checked).
func (s *Subscriber) unparkNow(ctx context.Context) error {
	s.mu.Lock()
	plan := s.park
	if plan == nil || plan.fired || s.closed {
		s.mu.Unlock()
		return nil
	}
	plan.fired = true
	s.mu.Unlock()
	return s.restore(ctx, plan, nil)
}

// restoreTimeout bounds how long the new connection may take to listen.
const restoreTimeout = 5 * time.Second

// restore makes the new connection of plan and passes h on to it.
func (s *Subscriber) restore(ctx context.Context, plan *parkedPlan, h *held) error {
	defer s.e.handedOff.parked.remove(plan.ufrag, s)
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	pc, err := s.openPC(plan.ufrag, plan.pwd, plan.cert)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	fail := func(err error) error {
		s.pcOff.Store(true)
		s.mu.Unlock()
		_ = pc.Close()
		return err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: plan.offer}); err != nil {
		return fail(fmt.Errorf("the offer again: %w", err))
	}
	senders := make([]*webrtc.RTPSender, len(plan.dts))
	for i, dt := range plan.dts {
		if senders[i], err = pc.AddTrack(dt); err != nil {
			return fail(fmt.Errorf("add track %s again: %w", dt.id, err))
		}
	}
	// Down-tracks the room removed while the connection was parked get
	// their media section back, and leave it at once.
	var gone []*webrtc.RTPSender
	for i, dt := range plan.dts {
		found := false
		for _, sub := range s.subs {
			if sub.dt == dt {
				sub.sender = senders[i]
				found = true
			}
		}
		if !found {
			gone = append(gone, senders[i])
		}
	}
	s.rtcpMu.Lock()
	s.pc = pc
	s.park = nil
	s.rtcpMu.Unlock()
	cands := s.pending.take()
	s.mu.Unlock()

	answer, err := localAnswer(ctx, pc, true)
	if err != nil {
		return err
	}
	if u, p, err := localICECredentials(pc); err != nil || u != plan.ufrag || p != plan.pwd {
		return fmt.Errorf("the new connection's ICE credentials differ from the answer's")
	}
	if f1, f2 := fingerprintOf(answer), plan.cert; f1 == "" || !certHasFingerprint(f2, f1) {
		return fmt.Errorf("the new connection's DTLS fingerprint differs from the answer's")
	}
	for _, sn := range gone {
		_ = pc.RemoveTrack(sn)
	}
	cands.addTo(pc)
	if h != nil {
		h.conn.kick(h)
	}
	s.e.stats.unparked.Add(1)
	return nil
}

// fingerprintOf returns the value of an SDP's first a=fingerprint line.
func fingerprintOf(sdp string) string {
	for line := range strings.Lines(sdp) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "a=fingerprint:"); ok {
			return strings.ToLower(v)
		}
	}
	return ""
}

// certHasFingerprint reports whether "alg value" (lower case) is one of c's
// fingerprints.
func certHasFingerprint(c webrtc.Certificate, fp string) bool {
	fps, err := c.GetFingerprints()
	if err != nil {
		return false
	}
	for _, f := range fps {
		if strings.ToLower(f.Algorithm+" "+f.Value) == fp {
			return true
		}
	}
	return false
}

// viewerCertLife is how long the engine answers viewers with one DTLS
// certificate before it makes another (Pion's certificates are valid for a
// month; a parked connection needs its own for at most its setup time).
const viewerCertLife = 24 * time.Hour

// viewerCert returns the DTLS certificate viewer connections are made
// with: one per engine, renewed daily, so that a parked connection comes
// back with the fingerprint its answer gave, and so that a viewer's join
// does not pay for a key pair of its own.
func (e *Engine) viewerCert() (webrtc.Certificate, error) {
	e.certMu.Lock()
	defer e.certMu.Unlock()
	if e.cert != nil && time.Since(e.certAt) < viewerCertLife {
		return *e.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return webrtc.Certificate{}, fmt.Errorf("sfu: viewer certificate key: %w", err)
	}
	c, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return webrtc.Certificate{}, fmt.Errorf("sfu: viewer certificate: %w", err)
	}
	e.cert, e.certAt = c, time.Now()
	return *c, nil
}

// kick hands h to Pion's mux: the socket's read, blocked in the kernel, is
// woken by a deadline in the past and returns h's packet.
func (c *muxConn) kick(h *held) {
	c.replayMu.Lock()
	c.replay = append(c.replay, h)
	c.replays.Store(int32(len(c.replay)))
	c.replayMu.Unlock()
	c.kicked.Store(true)
	_ = c.UDPConn.SetReadDeadline(time.Unix(1, 0))
}

// takeReplay copies the oldest kept packet into b.
func (c *muxConn) takeReplay(b []byte) (int, netip.AddrPort, bool) {
	c.replayMu.Lock()
	defer c.replayMu.Unlock()
	if len(c.replay) == 0 {
		return 0, netip.AddrPort{}, false
	}
	h := c.replay[0]
	c.replay[0] = nil
	c.replay = c.replay[1:]
	c.replays.Store(int32(len(c.replay)))
	return copy(b, h.pkt), h.from, true
}

// woken reports whether err is the deadline kick set: the read goes on.
func (c *muxConn) woken(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) || !c.kicked.Swap(false) {
		return false
	}
	_ = c.UDPConn.SetReadDeadline(time.Time{})
	return true
}

// parkingListener is the ICE-TCP listener as Pion's TCP mux sees it: the
// first framed STUN message on each connection (RFC 4571) brings back the
// parked connection it names. Pion's mux keeps the TCP connection, and
// that first message, until the new connection's agent asks for them.
type parkingListener struct {
	net.Listener
	set *parkedSet
}

// Accept implements net.Listener.
func (l *parkingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	return &parkingConn{Conn: c, set: l.set}, nil
}

// maxFirstFrame bounds what a TCP connection's first frame is looked at
// for: a check is a few hundred bytes.
const maxFirstFrame = 2048

// parkingConn looks at the first frame read from an ICE-TCP connection.
type parkingConn struct {
	net.Conn
	set  *parkedSet
	done bool
	head []byte
}

// Read implements net.Conn.
func (c *parkingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if !c.done && n > 0 {
		c.look(b[:n])
	}
	return n, err
}

func (c *parkingConn) look(p []byte) {
	if c.set.n.Load() == 0 {
		c.done, c.head = true, nil
		return
	}
	c.head = append(c.head, p...)
	if len(c.head) < 2 {
		return
	}
	size := int(binary.BigEndian.Uint16(c.head))
	if size > maxFirstFrame {
		c.done, c.head = true, nil
		return
	}
	if len(c.head) < 2+size {
		return
	}
	c.set.wake(c.head[2:2+size], nil, netip.AddrPort{})
	c.done, c.head = true, nil
}

// compactOffer returns offer without the codecs answer did not accept:
// answered again, it gives the same answer, and a parked connection keeps
// a third of it (a browser's offer lists every codec it has, about 6 KB).
// It returns offer itself when either does not parse or they do not match.
func compactOffer(offer, answer string) string {
	var o, a sdp.SessionDescription
	if o.UnmarshalString(offer) != nil || a.UnmarshalString(answer) != nil || len(o.MediaDescriptions) != len(a.MediaDescriptions) {
		return offer
	}
	for i, om := range o.MediaDescriptions {
		am := a.MediaDescriptions[i]
		if am.MediaName.Port.Value == 0 || len(am.MediaName.Formats) == 0 {
			continue // rejected: kept as offered
		}
		kept := map[string]bool{}
		for _, f := range am.MediaName.Formats {
			kept[f] = true
		}
		exts := map[string]bool{}
		for _, at := range am.Attributes {
			if at.Key == "extmap" {
				_, uri, _ := strings.Cut(at.Value, " ")
				exts[uri] = true
			}
		}
		var formats []string
		for _, f := range om.MediaName.Formats {
			if kept[f] {
				formats = append(formats, f)
			}
		}
		if len(formats) == 0 {
			return offer
		}
		om.MediaName.Formats = formats
		attrs := om.Attributes[:0]
		for _, at := range om.Attributes {
			switch at.Key {
			case "rtpmap", "fmtp", "rtcp-fb":
				pt, _, _ := strings.Cut(at.Value, " ")
				if pt != "*" && !kept[pt] {
					continue
				}
			case "extmap":
				if _, uri, _ := strings.Cut(at.Value, " "); !exts[uri] {
					continue
				}
			}
			attrs = append(attrs, at)
		}
		om.Attributes = attrs
	}
	out, err := o.Marshal()
	if err != nil {
		return offer
	}
	return string(out)
}
