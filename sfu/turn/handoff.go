package turn

import (
	"net/netip"
	"sync"
)

// The in-process hand-off. A relayed viewer's media leaves the SFU for the
// relay address of the viewer's allocation on this same server: through
// the kernel, that is a sendmmsg on the SFU's media socket and a recvfrom
// on the relay socket per packet, a third of a relayed viewer's cost
// (docs/benchmarks.md section 19). HandOff delivers such a datagram to the
// relay's reader directly instead, as if the relay socket had received it
// from the SFU's media address.
//
// Why it is safe (the relay stays closed to everyone else): only the media
// engine calls HandOff, for datagrams it sends from its own media socket;
// the datagram then takes the same checks as one read from the socket
// (ReadFrom: the source must be one of the node's media addresses, under
// the allocation's bandwidth cap; pion: the client must hold a permission
// or channel for it). Nothing a client sends goes anywhere new: what the
// relay sends to peers (WriteTo) is untouched.

// inboxSize bounds the datagrams waiting for pion's reader of one
// allocation; beyond, they are dropped, as a full socket buffer would
// (counted as queue_full).
const inboxSize = 512

// maxDatagram is the largest datagram kept: pion reads with 1600 bytes.
const maxDatagram = 1600

// datagram is one datagram waiting in a relay's inbox.
type datagram struct {
	b    [maxDatagram]byte
	n    int
	from netip.AddrPort
}

var datagrams = sync.Pool{New: func() any { return new(datagram) }}

func getDatagram() *datagram { return datagrams.Get().(*datagram) }

func putDatagram(d *datagram) { datagrams.Put(d) }

// IsRelay reports whether dst is the relay address of a live allocation
// of this server. It is on the packet path.
func (s *Server) IsRelay(dst netip.AddrPort) bool {
	if dst.Addr().Unmap() != s.relayIP {
		return false
	}
	return s.relays.conn(netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())) != nil
}

// HandOff gives p, sent by the media engine from its media address from
// to dst, to the relay at dst if dst is a live relay of this server, and
// reports whether it did (false: send it through the network as usual).
// p is copied; a relay whose inbox is full drops it (true all the same).
// It is on the packet path: no allocation, no log.
func (s *Server) HandOff(dst, from netip.AddrPort, p []byte) bool {
	if dst.Addr().Unmap() != s.relayIP || len(p) > maxDatagram {
		return false
	}
	c := s.relays.conn(netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()))
	if c == nil {
		return false
	}
	d := getDatagram()
	d.n = copy(d.b[:], p)
	d.from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	select {
	case c.inbox <- d:
	case <-c.done: // closing: dropped
		putDatagram(d)
	default:
		putDatagram(d)
		s.metrics.refused(ReasonQueueFull)
	}
	return true
}

// readSocket moves the datagrams the relay socket receives to the inbox
// until the socket closes; then done is closed.
func (c *relayConn) readSocket() {
	defer close(c.done)
	for {
		d := getDatagram()
		n, ap, err := c.UDPConn.ReadFromUDPAddrPort(d.b[:])
		if err != nil {
			putDatagram(d)
			c.readErr = err
			return
		}
		d.n, d.from = n, ap
		select {
		case c.inbox <- d:
		default:
			putDatagram(d)
			c.s.metrics.refused(ReasonQueueFull)
		}
	}
}
