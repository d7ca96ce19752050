package sfu

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// mediaSocket is one of the engine's shared UDP sockets: Pion's UDP mux
// reads it and sends ICE, DTLS and RTCP on it; viewers' media is written
// to it directly, in batches (lean.go).
type mediaSocket struct {
	conn  *net.UDPConn
	local netip.AddrPort
	// dual is a socket on the unspecified IPv6 address: it may carry IPv4
	// peers as mapped addresses, which sendmmsg's address marshalling
	// cannot express, so those peers stay on Pion's write path.
	dual  bool
	batch batchWriter
	// handOff, when set, takes the datagrams for the embedded TURN
	// server's relays in the process (transport.go, SetTURNHandOff).
	handOff atomic.Pointer[TURNHandOff]
}

// batchWriter sends a batch of datagrams (sendmmsg).
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newMediaSocket(c *net.UDPConn) *mediaSocket {
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	s := &mediaSocket{conn: c, local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port())}
	var w batchWriter
	if s.local.Addr().Is4() {
		w = ipv4.NewPacketConn(c)
	} else {
		s.dual = s.local.Addr().IsUnspecified()
		w = ipv6.NewPacketConn(c)
	}
	s.batch = handOffBatch{sock: s, w: w}
	return s
}

// handOffBatch is a socket's batch writer that hands the datagrams for the
// embedded TURN server's relays over in the process (no sendmmsg to the
// relay, no recvfrom on it) and sends the others. Each call handles a
// leading run of one kind, in order, and says how many it handled, as
// WriteBatch does: the caller sends the rest with the next call. Without a
// TURN server it is one atomic load per batch.
type handOffBatch struct {
	sock *mediaSocket
	w    batchWriter
}

// WriteBatch implements batchWriter.
func (h handOffBatch) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	p := h.sock.handOff.Load()
	if p == nil || h.sock.local.Addr().IsUnspecified() {
		return h.w.WriteBatch(ms, flags)
	}
	t := *p
	relay := func(m *ipv4.Message) (netip.AddrPort, bool) {
		ua, ok := m.Addr.(*net.UDPAddr)
		if !ok || len(m.Buffers) != 1 {
			return netip.AddrPort{}, false
		}
		ap := ua.AddrPort()
		return ap, t.IsRelay(ap)
	}
	n := 0
	for ; n < len(ms); n++ {
		dst, ok := relay(&ms[n])
		if !ok {
			break
		}
		t.HandOff(dst, h.sock.local, ms[n].Buffers[0])
	}
	if n > 0 {
		return n, nil
	}
	// Not for a relay: send it and the others up to the next relay's.
	j := 1
	for ; j < len(ms); j++ {
		if _, ok := relay(&ms[j]); ok {
			break
		}
	}
	return h.w.WriteBatch(ms[:j], flags)
}

// socketFor returns the engine's socket a selected ICE pair's local
// candidate is on, or nil (ICE-TCP, a relay's own port, a peer behind TURN).
func (e *Engine) socketFor(local netip.AddrPort, remote netip.Addr) *mediaSocket {
	for _, s := range e.socks {
		if s.local.Port() != local.Port() {
			continue
		}
		if s.local.Addr() == local.Addr().Unmap() {
			return s
		}
		if s.local.Addr().IsUnspecified() && s.local.Addr().Is4() == local.Addr().Unmap().Is4() {
			if s.dual && remote.Unmap().Is4() {
				return nil
			}
			return s
		}
	}
	return nil
}

// recordingNet is the standard network for Pion's every-address UDP mux,
// keeping the sockets it opens so that the engine can write to them. Each
// socket reaches the mux through a muxConn.
type recordingNet struct {
	*stdnet.Net
	set   *handedOffSet
	socks []*mediaSocket
}

func newRecordingNet(set *handedOffSet) (*recordingNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &recordingNet{Net: n, set: set}, nil
}

// ListenUDP implements transport.Net.
func (n *recordingNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return c, err
	}
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return c, nil
	}
	s := newMediaSocket(uc)
	n.socks = append(n.socks, s)
	return &muxConn{UDPConn: uc, sock: s, set: n.set}, nil
}

// muxConn is an engine socket as Pion's UDP mux sees it: packets from a
// viewer whose connection was handed over from Pion (handoff.go) are
// handled here and never reach the mux, and whatever Pion would still send
// such a viewer (its connection's teardown) is dropped. Nothing else is
// touched: with no connection handed over, one atomic load per packet.
type muxConn struct {
	*net.UDPConn
	sock *mediaSocket
	set  *handedOffSet
	// Checks kept for parked connections that came back (park.go), handed
	// to Pion's mux by the next reads; kicked: a deadline woke the read.
	replayMu sync.Mutex
	replay   []*held
	replays  atomic.Int32
	kicked   atomic.Bool
}

// ReadFromAddrPort is what the mux reads with (ice.AddrPortReaderWriter).
func (c *muxConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		if c.replays.Load() > 0 {
			if n, ap, ok := c.takeReplay(b); ok {
				return n, ap, nil
			}
		}
		n, ap, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil {
			if c.woken(err) {
				continue
			}
			return n, ap, err
		}
		handed, parked := c.set.n.Load() != 0, c.set.parked.n.Load() != 0
		if !handed && !parked {
			return n, ap, nil
		}
		from := canonicalAddrPort(ap)
		var h *handedOff
		if handed {
			h = c.set.get(c.sock, from)
			if h == nil && c.set.probing.Load() > 0 {
				// The answer to a check of ours (pathcheck.go)?
				h = c.set.getProbe(c.sock, from)
			}
			if h == nil && c.set.restarting.Load() > 0 && n > 0 && b[0] < 4 {
				// A check from a new address, with an ICE restart's new
				// credentials?
				h = c.set.byCheck(b[:n])
			}
		}
		if h != nil {
			h.receive(b[:n], c.sock, from)
			continue
		}
		if parked && n > 0 && b[0] < 4 && c.set.parked.wake(b[:n], c, ap) {
			continue // the first check of a parked connection, kept for it (park.go)
		}
		return n, ap, nil
	}
}

// ReadFrom implements net.PacketConn (the mux reads with ReadFromAddrPort).
func (c *muxConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, ap, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// WriteToAddrPort is what the mux writes with.
func (c *muxConn) WriteToAddrPort(b []byte, ap netip.AddrPort) (int, error) {
	if c.set.n.Load() != 0 && c.set.get(c.sock, canonicalAddrPort(ap)) != nil {
		return len(b), nil
	}
	return c.UDPConn.WriteToUDPAddrPort(b, ap)
}

// WriteTo implements net.PacketConn.
func (c *muxConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		return c.WriteToAddrPort(b, ua.AddrPort())
	}
	return c.UDPConn.WriteTo(b, addr)
}

// canonicalAddrPort is the form a peer's address is kept in: IPv4 as
// IPv4 (not mapped), no zone but a link-local one's.
func canonicalAddrPort(ap netip.AddrPort) netip.AddrPort {
	a := ap.Addr().Unmap()
	if !a.IsLinkLocalUnicast() {
		a = a.WithZone("")
	}
	return netip.AddrPortFrom(a, ap.Port())
}
