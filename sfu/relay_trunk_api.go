package sfu

import (
	"fmt"
	"net"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// A trunk's edge side has a UDP socket of its own (as a room's relay had:
// two connections between the same two muxed ports would collide in the
// origin's mux), with a large receive buffer: one socket now carries every
// room the two nodes share, and with the kernel's default (~208 KiB) a busy
// edge drops the burst that arrives while its reader waits for a core
// (seen in the 30-room test: a third of the trunk's packets on a loaded
// machine, where 30 sockets of their own lost none).

// trunkSocketBuffer is a trunk socket's receive and send buffer, as the
// engine's media port has.
const trunkSocketBuffer = 4 << 20

// trunkNet opens Pion's sockets for a trunk with large buffers.
type trunkNet struct{ *stdnet.Net }

// ListenUDP implements transport.Net.
func (n trunkNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		_ = c.SetReadBuffer(trunkSocketBuffer)
		_ = c.SetWriteBuffer(trunkSocketBuffer)
	}
	return c, err
}

// trunkAPI builds the API of a trunk's edge side: the publishers' settings
// (loopback, NAT addresses, SRTP profiles and replay window, ICE timeouts)
// and interceptors, on sockets of its own (trunkNet) rather than the media
// port, UDP only, limited to the media address when the engine has one, and
// without DTLS HelloVerify (as relayInAPI: DTLS runs only on the pair ICE
// checked with the credentials of the authenticated request).
func (e *Engine) trunkAPI() (*webrtc.API, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("sfu: trunk network: %w", err)
	}
	se := e.subSE
	se.SetNet(trunkNet{n})
	se.SetICEUDPMux(nil)
	se.SetICETCPMux(nil)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if len(e.udpAddrs) == 1 {
		if a, ok := e.udpAddrs[0].(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
			only := a.IP
			se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(only) })
		}
	}
	se.SetDTLSInsecureSkipHelloVerify(true)
	// A trunk opened while the path between the nodes is down (a region
	// cut off, the trunk lost and opened again at once) keeps checking its
	// pairs for as long as the room waits for it (10 s: 50 checks 200 ms
	// apart) instead of Pion's 7: when the path comes back within that
	// time, the next check gets through and the trunk is up in a round
	// trip, rather than the attempt sitting out its deadline with every
	// pair given up after 1.4 s.
	se.SetICEMaxBindingRequests(trunkBindingRequests)
	return newPublisherAPI(se, e.lf)
}

// trunkBindingRequests is how many checks a trunk's or a relay's pair gets
// before it is given up: 10 s of checks at Pion's 200 ms.
const trunkBindingRequests = 50
