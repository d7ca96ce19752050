package sfu

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
	"golang.org/x/net/ipv4"
)

// The lean write path. A viewer's packet needs three things from its
// connection: SRTP encryption with the viewer's keys, the address its ICE
// pair settled on, and the shared socket. Pion's write chain (interceptors,
// the SRTP session's stream lookup and locks, the ICE conn, the UDP mux)
// costs more than the encryption itself and does one sendto per packet. So
// once a viewer's DTLS handshake is done, each of its down-tracks encrypts
// with an SRTP context of its own (one per SSRC, derived from the
// connection's keys) into the writer's batch, and the batch of one fan-out
// round leaves in one sendmmsg per socket (a few system calls per packet
// to N viewers instead of N).
//
// What Pion still does for a viewer: ICE (checks, consent, the pair), DTLS,
// RTCP in both directions. Sender reports are ours (senderreport.go), since
// Pion's interceptor no longer sees the packets.
//
// A viewer stays on Pion's path when its pair is not on one of the
// engine's UDP sockets (ICE-TCP, TURN), and so far when its connection
// estimates bandwidth (the transport-cc stamps are Pion's there).

// leanLink is one viewer connection's direct path: its keys once DTLS is
// up, and the socket and peer address of its selected ICE pair.
type leanLink struct {
	keys    atomic.Pointer[leanKeys]
	path    atomic.Pointer[leanPath]
	started atomic.Bool // a packet left on the lean path
	lost    atomic.Bool // the pair left the engine's sockets after the start
	viaPion atomic.Bool // packets went through Pion's SRTP session after the handshake: they always will
	// handedOver: Pion no longer runs the connection (handoff.go); what
	// its teardown reports about the pair is not news.
	handedOver atomic.Bool
	onLost     func()
}

type leanKeys struct {
	profile   srtp.ProtectionProfile
	key, salt []byte
	// The viewer's own key and salt: its RTCP is decrypted with them once
	// the connection is handed over from Pion (handoff.go).
	remoteKey, remoteSalt []byte
}

type leanPath struct {
	sock *mediaSocket
	addr *net.UDPAddr
	ap   netip.AddrPort
}

// newLeanLink makes a viewer connection's lean path. onLost is called
// (once, on a Pion goroutine) if the connection's pair moves off the
// engine's sockets after packets went out on it: Pion's SRTP session has
// not seen them, so its rollover counters would be wrong, and the
// connection must be replaced.
//
// There is no lean path (nil) when the engine has no UDP sockets of its
// own, or when this Pion version's keys cannot be read (dtlskeys.go).
func (e *Engine) newLeanLink(onLost func()) *leanLink {
	if len(e.socks) == 0 || !pionDTLS.usable(e.log) {
		return nil
	}
	return &leanLink{onLost: onLost}
}

// watchPair has l follow the selected ICE pair of pc.
// (l may be nil: no lean path), and tells moved of every new pair (Pion
// takes one handler per connection: this is it).
func (e *Engine) watchPair(pc *webrtc.PeerConnection, l *leanLink, moved func(*webrtc.ICECandidatePair)) {
	dt := pc.SCTP().Transport()
	dt.ICETransport().OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) {
		if moved != nil {
			moved(p)
		}
		if l == nil || l.handedOver.Load() {
			return
		}
		path := e.pathFor(p)
		if path == nil && l.started.Load() && !l.lost.Swap(true) && l.onLost != nil {
			go l.onLost()
		}
		l.path.Store(path)
	})
}

// start gives the link its keys once the connection is up (its RTCP
// streams open): packets take the lean path from now on.
func (l *leanLink) start(dt *webrtc.DTLSTransport, e *Engine) {
	if l.keys.Load() != nil {
		return
	}
	k, err := dtlsKeys(dt)
	if err != nil {
		e.log.Warn("lean write path unavailable for a viewer", "err", err)
		return
	}
	l.keys.Store(k)
}

// pathFor finds the engine socket of a selected pair, or nil.
func (e *Engine) pathFor(p *webrtc.ICECandidatePair) *leanPath {
	if p == nil || p.Local == nil || p.Remote == nil || p.Local.Protocol != webrtc.ICEProtocolUDP {
		return nil
	}
	if p.Local.Typ == webrtc.ICECandidateTypeRelay {
		return nil
	}
	la, err1 := netip.ParseAddr(p.Local.Address)
	ra, err2 := netip.ParseAddr(p.Remote.Address)
	if err1 != nil || err2 != nil {
		return nil
	}
	s := e.socketFor(netip.AddrPortFrom(la, p.Local.Port), ra)
	if s == nil {
		// A NAT 1:1 address stands for the socket behind it: accept the
		// one socket of the peer's family that is not loopback.
		var only *mediaSocket
		for _, c := range e.socks {
			if c.local.Port() == p.Local.Port && c.local.Addr().Is4() == ra.Unmap().Is4() && !c.local.Addr().IsLoopback() && !c.dual {
				if only != nil {
					return nil
				}
				only = c
			}
		}
		if only == nil || e.ownsAddr(la) {
			return nil
		}
		s = only
	}
	ap := netip.AddrPortFrom(ra.Unmap(), p.Remote.Port)
	if !s.local.Addr().Is4() && ap.Addr().Is4() {
		ap = netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	return &leanPath{sock: s, addr: net.UDPAddrFromAddrPort(ap), ap: ap}
}

func (e *Engine) ownsAddr(a netip.Addr) bool {
	for _, s := range e.socks {
		if s.local.Addr() == a.Unmap() {
			return true
		}
	}
	return false
}

// leanOut is a down-track's SRTP context (contexts are not safe for
// concurrent use: the forwarder and the NACK handler both write).
type leanOut struct {
	mu  sync.Mutex
	ctx *srtp.Context
	hdr rtp.Header
}

func (d *DownTrack) leanOut(k *leanKeys) *leanOut {
	if o := d.out.Load(); o != nil {
		return o
	}
	d.outMu.Lock()
	defer d.outMu.Unlock()
	if o := d.out.Load(); o != nil {
		return o
	}
	ctx, err := srtp.CreateContext(k.key, k.salt, k.profile)
	if err != nil {
		return nil
	}
	o := &leanOut{ctx: ctx}
	d.out.Store(o)
	return o
}

// srtpOverhead bounds what SRTP adds to a packet (a 16-byte tag, a 4-byte
// rollover counter).
const srtpOverhead = 32

// slotSize is one encrypted packet's room in a batch.
const slotSize = maxCachedPacket + srtpOverhead

var leanBufs = sync.Pool{New: func() any { b := make([]byte, 2*slotSize); return &b }}

// writeLean encrypts one rewritten packet for the viewer and queues it on
// sb (or sends it at once when sb is nil: a retransmission from the
// viewer's RTCP goroutine). It returns the packet's size, 0 when it was not
// sent.
func (d *DownTrack) writeLean(k *leanKeys, p *leanPath, h *rtp.Header, payload []byte, sb *sendBatch) int {
	o := d.leanOut(k)
	if o == nil {
		return 0
	}
	var bp *[]byte
	var plain, dst []byte
	if sb != nil {
		plain = sb.plain[:]
		dst = sb.reserve()
	} else {
		bp = leanBufs.Get().(*[]byte)
		plain, dst = (*bp)[:slotSize], (*bp)[slotSize:]
	}
	hl := h.MarshalSize()
	n := hl + len(payload)
	if n > maxCachedPacket {
		if bp != nil {
			leanBufs.Put(bp)
		}
		return 0
	}
	if _, err := h.MarshalTo(plain); err != nil {
		if bp != nil {
			leanBufs.Put(bp)
		}
		return 0
	}
	copy(plain[hl:n], payload)
	o.mu.Lock()
	ct, err := o.ctx.EncryptRTP(dst[:0], plain[:n], &o.hdr)
	o.mu.Unlock()
	if err != nil || len(ct) > slotSize || &ct[0] != &dst[0] {
		if bp != nil {
			leanBufs.Put(bp)
		}
		return 0
	}
	if sb != nil {
		sb.commit(p, len(ct))
		d.lastBatch, d.lastEpoch = sb, sb.flushes.Load()
	} else {
		_, err = p.sock.conn.WriteToUDPAddrPort(ct, p.ap)
		leanBufs.Put(bp)
		if err != nil {
			return 0
		}
	}
	return n
}

// batchMax is the most packets one sendmmsg call takes here.
const batchMax = 64

// sendBatch collects the encrypted packets of one writer's round, so that
// they leave in one sendmmsg per socket. Each writer goroutine (a track's
// forwarder, a fan-out worker) has its own; it is flushed at the end of
// every round, and whenever it is full, so that a viewer's packets leave in
// the order they were queued.
type sendBatch struct {
	plain [maxCachedPacket]byte
	slots [][]byte
	iov   [][1][]byte
	msgs  []ipv4.Message
	socks []*mediaSocket
	tmp   []ipv4.Message
	seen  []*mediaSocket
	est   estScratch // stamping for an estimated connection (bwe.go)
	n     int
	st    *counters
	// flushes counts completed flushes: a packet committed while it read
	// e has left once it exceeds e.
	flushes atomic.Uint64
}

func newSendBatch(st *counters) *sendBatch {
	return &sendBatch{st: st}
}

// reserve returns the buffer of the next packet, flushing a full batch.
func (b *sendBatch) reserve() []byte {
	if b.n == batchMax {
		b.flush()
	}
	if b.n == len(b.slots) {
		// Grown on demand: a track with few viewers keeps a small batch.
		b.slots = append(b.slots, make([]byte, slotSize))
		b.iov = append(b.iov, [1][]byte{})
		b.msgs = append(b.msgs, ipv4.Message{})
		b.socks = append(b.socks, nil)
	}
	return b.slots[b.n]
}

// commit queues the reserved buffer's first n bytes to p.
func (b *sendBatch) commit(p *leanPath, n int) {
	i := b.n
	b.iov[i][0] = b.slots[i][:n]
	b.msgs[i] = ipv4.Message{Buffers: b.iov[i][:], Addr: p.addr}
	b.socks[i] = p.sock
	b.n++
}

// flush sends what is queued.
func (b *sendBatch) flush() {
	defer b.flushes.Add(1)
	n := b.n
	if n == 0 {
		return
	}
	b.n = 0
	b.st.directPackets.Add(uint64(n))
	if n == 1 {
		// One packet (a lone viewer's round): sendto is cheaper than
		// sendmmsg's header packing.
		p := &b.msgs[0]
		_, err := b.socks[0].conn.WriteTo(p.Buffers[0], p.Addr)
		b.st.sendCalls.Add(1)
		if err != nil {
			b.st.writeErrors.Add(1)
		}
		b.msgs[0], b.socks[0] = ipv4.Message{}, nil
		return
	}
	first := b.socks[0]
	same := true
	for _, s := range b.socks[1:n] {
		if s != first {
			same = false
			break
		}
	}
	if same {
		b.send(first, b.msgs[:n])
	} else {
		// Several sockets (a node on every address): one call per socket,
		// each viewer's packets in their order.
		b.seen = b.seen[:0]
		for i := range n {
			s := b.socks[i]
			if slices.Contains(b.seen, s) {
				continue
			}
			b.seen = append(b.seen, s)
			b.tmp = b.tmp[:0]
			for j := i; j < n; j++ {
				if b.socks[j] == s {
					b.tmp = append(b.tmp, b.msgs[j])
				}
			}
			b.send(s, b.tmp)
		}
	}
	for i := range n {
		b.msgs[i] = ipv4.Message{}
		b.socks[i] = nil
	}
}

func (b *sendBatch) send(s *mediaSocket, ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := s.batch.WriteBatch(ms, 0)
		b.st.sendCalls.Add(1)
		if err != nil {
			// The message at n failed (a peer's ICMP error, say): skip
			// it and send the rest.
			b.st.writeErrors.Add(1)
			n = max(n, 0) + 1
		} else if n <= 0 {
			return
		}
		ms = ms[min(n, len(ms)):]
	}
}

// pendingSent reports whether the down-track's last packet queued in
// another writer's batch has left. A viewer re-anchored to another source
// (a simulcast layer, a republished track) is written by that source's
// forwarder from then on, and its first packets must not overtake the last
// ones of the old source: until the old writer has flushed (at the end of
// its round, microseconds), the new anchor waits for the next packet. It
// never waits in place: the old writer's round may still need this
// down-track's lock. After 50 ms it gives up (a writer stuck on its
// socket). d.mu is held; now is monoNow.
func (d *DownTrack) pendingSent(mine *sendBatch, now int64) bool {
	b := d.lastBatch
	if b == nil || b == mine || b.flushes.Load() > d.lastEpoch {
		d.lastBatch, d.pendingSince = nil, 0
		return true
	}
	if d.pendingSince == 0 {
		d.pendingSince = now
	} else if now-d.pendingSince > int64(50*time.Millisecond) {
		d.lastBatch, d.pendingSince = nil, 0
		return true
	}
	return false
}
