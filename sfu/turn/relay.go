package turn

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pturn "github.com/pion/turn/v5"
	"golang.org/x/time/rate"
)

// errTCPRelay refuses an allocation asking for a TCP relay (RFC 6062): the
// SFU speaks UDP to a relay, and a TCP CONNECT would reach any port.
var errTCPRelay = errors.New("turn: TCP relaying is not offered")

// metadataIP is the cloud instance metadata service's address.
var metadataIP = netip.MustParseAddr("169.254.169.254")

// peers is the set of media addresses a relay may reach: the node's own,
// and the public addresses it announces for them (sfu.nat_1to1_ips on the
// media port), which the relay reaches through the local address behind
// them instead of out to the NAT and back.
type peers struct {
	addrs []netip.AddrPort // allowed peers
	udp   []*net.UDPAddr   // addrs as pion wants them, made once: no garbage per packet
	via   []netip.AddrPort // where a datagram to addrs[i] goes: itself, or the local address behind a public one
}

// newPeers is the set of the local media addresses and, for each public
// IP, that IP on the port of a local address of its family (one not on
// loopback if there is one).
func newPeers(local []netip.AddrPort, public []netip.Addr) *peers {
	p := &peers{}
	add := func(a, via netip.AddrPort) {
		p.addrs = append(p.addrs, a)
		p.udp = append(p.udp, net.UDPAddrFromAddrPort(a))
		p.via = append(p.via, via)
	}
	for _, a := range local {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		add(a, a)
	}
	for _, ip := range public {
		ip = ip.Unmap()
		var behind netip.AddrPort
		for _, a := range p.addrs[:len(local)] {
			if a.Addr().Is4() == ip.Is4() && (!behind.IsValid() || behind.Addr().IsLoopback() && !a.Addr().IsLoopback()) {
				behind = a
			}
		}
		if behind.IsValid() && p.index(netip.AddrPortFrom(ip, behind.Port())) < 0 {
			add(netip.AddrPortFrom(ip, behind.Port()), behind)
		}
	}
	return p
}

// allowsIP reports whether ip is the IP of one of the media addresses.
func (p *peers) allowsIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, a := range p.addrs {
		if a.Addr() == ip {
			return true
		}
	}
	return false
}

// index is the position of a among the media addresses, port included, or
// -1.
func (p *peers) index(a netip.AddrPort) int {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	for i, m := range p.addrs {
		if m == a {
			return i
		}
	}
	return -1
}

// refusalReason names why a peer IP is refused, for the metrics.
func refusalReason(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip == metadataIP:
		return ReasonPeerMetadata
	case ip.IsLoopback():
		return ReasonPeerLoopback
	case ip.IsPrivate():
		return ReasonPeerPrivate
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return ReasonPeerLinkLocal
	}
	return ReasonPeerOther
}

// ownRelays are the relay addresses of this server's live allocations,
// with the identity that holds each. A relay may reach another relay of the
// same identity (the /check page's two connections meet that way), which
// leads nowhere but back into this server; another identity's relay stays
// out of reach, so nobody can send into a viewer's allocation.
type ownRelays struct {
	mu sync.RWMutex
	m  map[netip.AddrPort]ownRelay
}

type ownRelay struct {
	addr      *net.UDPAddr
	identity  string
	transport string     // how its client reaches the server (udp, tcp, tls), once created
	conn      *relayConn // its socket, for the in-process hand-off (handoff.go)
}

func (o *ownRelays) add(a *net.UDPAddr, identity string, c *relayConn) netip.AddrPort {
	ap := a.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	o.mu.Lock()
	if o.m == nil {
		o.m = map[netip.AddrPort]ownRelay{}
	}
	o.m[ap] = ownRelay{addr: a, identity: identity, conn: c}
	o.mu.Unlock()
	return ap
}

// conn is the socket of the live relay at ap (canonical), or nil.
func (o *ownRelays) conn(ap netip.AddrPort) *relayConn {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.m[ap].conn
}

// created notes how the client of the relay at a reaches the server.
func (o *ownRelays) created(a net.Addr, transport string) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	o.mu.Lock()
	if r, ok := o.m[ap]; ok {
		r.transport = transport
		o.m[ap] = r
	}
	o.mu.Unlock()
}

// transportOf is how the client of the relay at ap reaches the server, ""
// when ap is no live relay.
func (o *ownRelays) transportOf(ap netip.AddrPort) string {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.m[ap].transport
}

func (o *ownRelays) remove(ap netip.AddrPort) {
	o.mu.Lock()
	delete(o.m, ap)
	o.mu.Unlock()
}

// lookup returns the relay at ap if identity holds it.
func (o *ownRelays) lookup(ap netip.AddrPort, identity string) *net.UDPAddr {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	o.mu.RLock()
	r, ok := o.m[ap]
	o.mu.RUnlock()
	if !ok || r.identity != identity {
		return nil
	}
	return r.addr
}

// ownRelay returns the relay at ap if identity holds it, else nil.
func (s *Server) ownRelay(ap netip.AddrPort, identity string) *net.UDPAddr {
	if ap.Addr().Unmap() != s.relayIP {
		return nil
	}
	return s.relays.lookup(ap, identity)
}

// permit is pion's PermissionHandler: CreatePermission and ChannelBind
// toward an IP of the node's media addresses (or its relay IP) only. Ports
// are checked on every datagram by relayConn (a TURN permission is per IP).
func (s *Server) permit(_ net.Addr, peerIP net.IP) bool {
	ip, ok := netip.AddrFromSlice(peerIP)
	if ok && (s.peers.allowsIP(ip) || ip.Unmap() == s.relayIP) {
		return true
	}
	s.metrics.refused(refusalReason(ip))
	return false
}

// relays is the RelayAddressGenerator: a UDP socket on the relay IP per
// allocation, wrapped in a relayConn; TCP relays are refused.
type relays struct{ s *Server }

// Validate is called by pion once at start.
func (r relays) Validate() error { return nil }

// AllocatePacketConn opens the relay socket of a UDP allocation.
func (r relays) AllocatePacketConn(c pturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	network := "udp4"
	if r.s.relayIP.Is6() {
		network = "udp6"
	}
	if c.Network != network {
		return nil, nil, errors.New("turn: the relay has no address of the requested family")
	}
	pc, err := net.ListenPacket(network, netip.AddrPortFrom(r.s.relayIP, 0).String())
	if err != nil {
		return nil, nil, err
	}
	local := pc.LocalAddr().(*net.UDPAddr)
	rc := &relayConn{UDPConn: pc.(*net.UDPConn), s: r.s, identity: c.UserID,
		inbox: make(chan *datagram, inboxSize), done: make(chan struct{})}
	if r.s.opts.MaxBitrate > 0 {
		bytesPerSec := float64(r.s.opts.MaxBitrate) / 8
		// A burst of a quarter second: a keyframe passes whole.
		burst := max(int(bytesPerSec/4), 64<<10)
		rc.up = rate.NewLimiter(rate.Limit(bytesPerSec), burst)
		rc.down = rate.NewLimiter(rate.Limit(bytesPerSec), burst)
	}
	go rc.readSocket() // ends when the socket closes (Close)
	rc.own = r.s.relays.add(local, c.UserID, rc)
	return rc, pc.LocalAddr(), nil
}

// AllocateListener refuses a TCP allocation.
func (r relays) AllocateListener(pturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	r.s.metrics.refused(ReasonTCPRelay)
	return nil, nil, errTCPRelay
}

// AllocateConn refuses a TCP relay connection.
func (r relays) AllocateConn(pturn.AllocateConnConfig) (net.Conn, error) {
	r.s.metrics.refused(ReasonTCPRelay)
	return nil, errTCPRelay
}

// relayConn is an allocation's relay socket: it sends only to the node's
// media addresses (port included), receives only from them, and holds each
// direction under the allocation's bandwidth cap. What it drops is counted,
// never logged: this is the packet path.
type relayConn struct {
	*net.UDPConn
	s        *Server
	identity string         // who holds the allocation
	own      netip.AddrPort // this relay's address among ownRelays
	up, down *rate.Limiter  // nil: no cap
	// nat is the public media address this allocation last sent to and
	// the local one behind it: what comes from the local one is given to
	// pion as from the public one, whose permission the client holds.
	nat atomic.Pointer[natPair]
	// inbox holds the datagrams for pion's reader: from the socket
	// (readSocket), and the media engine's own handed over in the process
	// (handoff.go). done is closed, with readErr set, when the socket
	// closed.
	inbox   chan *datagram
	done    chan struct{}
	readErr error
}

// natPair is a public media address and the local address behind it.
type natPair struct {
	local  netip.AddrPort
	public *net.UDPAddr
}

// Close closes the relay socket and forgets its address.
func (c *relayConn) Close() error {
	c.s.relays.remove(c.own)
	return c.UDPConn.Close()
}

// WriteTo sends a client's datagram to a peer, if the peer is the node.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		c.s.metrics.refused(ReasonPeerOther)
		return len(p), nil
	}
	ap := ua.AddrPort()
	dst := ap
	if i := c.s.peers.index(ap); i >= 0 {
		if dst = c.s.peers.via[i]; dst != c.s.peers.addrs[i] {
			if m := c.nat.Load(); m == nil || m.local != dst || m.public != c.s.peers.udp[i] {
				c.nat.Store(&natPair{local: dst, public: c.s.peers.udp[i]})
			}
		}
	} else if c.s.ownRelay(ap, c.identity) == nil {
		if c.s.peers.allowsIP(ap.Addr()) || ap.Addr().Unmap() == c.s.relayIP {
			c.s.metrics.refused(ReasonPeerPort)
		} else {
			c.s.metrics.refused(refusalReason(ap.Addr()))
		}
		return len(p), nil // dropped: a Send indication has no answer
	}
	if c.up != nil && !c.up.AllowN(time.Now(), len(p)) {
		c.s.metrics.refused(ReasonBandwidth)
		return len(p), nil
	}
	n, err := c.UDPConn.WriteToUDPAddrPort(p, dst)
	c.s.metrics.toPeer.Add(float64(n))
	return n, err
}

// ReadFrom returns the next datagram from the node's media addresses,
// whether it came through the socket or was handed over in the process;
// anything else reaching the relay is dropped.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		var d *datagram
		select {
		case d = <-c.inbox:
		case <-c.done:
			select {
			case d = <-c.inbox: // what came before the close
			default:
				return 0, nil, c.readErr
			}
		}
		n, ap := copy(p, d.b[:d.n]), d.from
		putDatagram(d)
		var from *net.UDPAddr
		if i := c.s.peers.index(ap); i >= 0 {
			from = c.s.peers.udp[i]
			if m := c.nat.Load(); m != nil && m.local == c.s.peers.addrs[i] {
				from = m.public
			}
		} else if from = c.s.ownRelay(ap, c.identity); from == nil {
			c.s.metrics.refused(ReasonInbound)
			continue
		}
		if c.down != nil && !c.down.AllowN(time.Now(), n) {
			c.s.metrics.refused(ReasonBandwidth)
			continue
		}
		c.s.metrics.fromPeer.Add(float64(n))
		return n, from, nil
	}
}
