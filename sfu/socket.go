package sfu

import (
	"net"
	"net/netip"

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
	batch interface {
		WriteBatch(ms []ipv4.Message, flags int) (int, error)
	}
}

func newMediaSocket(c *net.UDPConn) *mediaSocket {
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()
	s := &mediaSocket{conn: c, local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port())}
	if s.local.Addr().Is4() {
		s.batch = ipv4.NewPacketConn(c)
	} else {
		s.dual = s.local.Addr().IsUnspecified()
		s.batch = ipv6.NewPacketConn(c)
	}
	return s
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
// keeping the sockets it opens so that the engine can write to them.
type recordingNet struct {
	*stdnet.Net
	conns []*net.UDPConn
}

func newRecordingNet() (*recordingNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &recordingNet{Net: n}, nil
}

// ListenUDP implements transport.Net.
func (n *recordingNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		if uc, ok := c.(*net.UDPConn); ok {
			n.conns = append(n.conns, uc)
		}
	}
	return c, err
}
