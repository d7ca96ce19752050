package sfu

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// The transport a connection counts under follows from the node's side of
// its selected pair: ICE-TCP from the local candidate's protocol, a relay
// of the embedded TURN server by the peer's address (and how its client
// reaches the TURN server), another relay by the peer's candidate type.
func TestTransportOf_NamesThePairAsTheOperatorSeesIt(t *testing.T) {
	e := &Engine{}
	relayUDP, relayTLS := netip.MustParseAddrPort("127.0.0.1:40001"), netip.MustParseAddrPort("127.0.0.1:40002")
	e.SetTURNRelays(func(ap netip.AddrPort) string {
		switch ap {
		case relayUDP:
			return "udp"
		case relayTLS:
			return "tls"
		}
		return ""
	})
	host := func(proto webrtc.ICEProtocol) *webrtc.ICECandidate {
		return &webrtc.ICECandidate{Typ: webrtc.ICECandidateTypeHost, Protocol: proto, Address: "127.0.0.1", Port: 5000}
	}
	peer := func(typ webrtc.ICECandidateType, ap netip.AddrPort) *webrtc.ICECandidate {
		return &webrtc.ICECandidate{Typ: typ, Protocol: webrtc.ICEProtocolUDP, Address: ap.Addr().String(), Port: ap.Port()}
	}
	other := netip.MustParseAddrPort("127.0.0.1:50000")
	for _, c := range []struct {
		name        string
		local, peer *webrtc.ICECandidate
		want        string
	}{
		{"host over UDP", host(webrtc.ICEProtocolUDP), peer(webrtc.ICECandidateTypeHost, other), TransportUDP},
		{"peer-reflexive over UDP", host(webrtc.ICEProtocolUDP), peer(webrtc.ICECandidateTypePrflx, other), TransportUDP},
		{"ICE-TCP", host(webrtc.ICEProtocolTCP), peer(webrtc.ICECandidateTypeHost, other), TransportTCP},
		{"embedded relay, client over UDP, seen as prflx", host(webrtc.ICEProtocolUDP), peer(webrtc.ICECandidateTypePrflx, relayUDP), TransportTURNUDP},
		{"embedded relay, client over TLS", host(webrtc.ICEProtocolUDP), peer(webrtc.ICECandidateTypeRelay, relayTLS), TransportTURNTLS},
		{"another TURN server's relay", host(webrtc.ICEProtocolUDP), peer(webrtc.ICECandidateTypeRelay, other), TransportTURNUDP},
	} {
		i := e.transportOf(webrtc.NewICECandidatePair(c.local, c.peer))
		if i < 0 || transportNames[i] != c.want {
			t.Errorf("%s: transport %d, want %s", c.name, i, c.want)
		}
	}
	if i := e.transportOf(nil); i != -1 {
		t.Errorf("no pair: transport %d, want none", i)
	}
}

// A connection counts once, under one transport, and not again after it
// closed (a late "connected" from Pion).
func TestConnTransport_CountsOnceAndNotAfterRelease(t *testing.T) {
	e := &Engine{}
	var c connTransport
	g := &e.transports.viewers
	c.at.Store(idxTCP + 1)
	g[idxTCP].Add(1)
	c.count(e, g, nil)
	if c.name() != TransportTCP || g[idxTCP].Load() != 1 {
		t.Fatalf("after a second count: %q, gauge %d", c.name(), g[idxTCP].Load())
	}
	c.release(g)
	c.release(g)
	if g[idxTCP].Load() != 0 || c.name() != "" {
		t.Fatalf("after release: gauge %d, name %q", g[idxTCP].Load(), c.name())
	}
	if c.at.CompareAndSwap(0, 1) {
		t.Fatal("a released connection can be counted again")
	}
}

// A connection whose selected pair moves (an ICE restart, a browser that
// went from a TURN relay to a direct path) counts under the new transport
// only; one not connected yet or closed is not counted by a move.
func TestConnTransport_FollowsThePairWhenItMoves(t *testing.T) {
	e := &Engine{}
	relay := netip.MustParseAddrPort("127.0.0.1:40001")
	e.SetTURNRelays(func(ap netip.AddrPort) string {
		if ap == relay {
			return "tcp"
		}
		return ""
	})
	local := &webrtc.ICECandidate{Typ: webrtc.ICECandidateTypeHost, Protocol: webrtc.ICEProtocolUDP, Address: "127.0.0.1", Port: 5000}
	viaRelay := webrtc.NewICECandidatePair(local, &webrtc.ICECandidate{Typ: webrtc.ICECandidateTypePrflx, Protocol: webrtc.ICEProtocolUDP, Address: "127.0.0.1", Port: relay.Port()})
	direct := webrtc.NewICECandidatePair(local, &webrtc.ICECandidate{Typ: webrtc.ICECandidateTypeHost, Protocol: webrtc.ICEProtocolUDP, Address: "127.0.0.1", Port: 50000})
	g := &e.transports.viewers
	var c connTransport
	c.move(e, g, direct)
	if c.name() != "" || g[idxUDP].Load() != 0 {
		t.Fatalf("a connection not up yet was counted by a move: %q", c.name())
	}
	c.at.Store(idxTURNTCP + 1)
	g[idxTURNTCP].Add(1)
	c.move(e, g, direct)
	if c.name() != TransportUDP || g[idxTURNTCP].Load() != 0 || g[idxUDP].Load() != 1 {
		t.Fatalf("after moving to a direct path: %q, turn_tcp %d, udp %d", c.name(), g[idxTURNTCP].Load(), g[idxUDP].Load())
	}
	c.move(e, g, viaRelay)
	if c.name() != TransportTURNTCP || g[idxTURNTCP].Load() != 1 || g[idxUDP].Load() != 0 {
		t.Fatalf("after moving back to the relay: %q, turn_tcp %d, udp %d", c.name(), g[idxTURNTCP].Load(), g[idxUDP].Load())
	}
	c.release(g)
	c.move(e, g, direct)
	if g[idxTURNTCP].Load() != 0 || g[idxUDP].Load() != 0 {
		t.Fatalf("a closed connection was counted by a move: turn_tcp %d, udp %d", g[idxTURNTCP].Load(), g[idxUDP].Load())
	}
}

// The ICE-TCP check keeps only TCP candidates of an SDP and every other
// line as it was.
func TestOnlyTCPCandidates_DropsEveryCandidateButTCP(t *testing.T) {
	in := "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" +
		"a=candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host\r\n" +
		"a=candidate:2 1 TCP 1518280447 192.0.2.1 9 typ host tcptype active\r\n" +
		"a=candidate:3 1 udp 1686052607 198.51.100.1 50000 typ srflx raddr 192.0.2.1 rport 50000\r\n" +
		"a=candidate:x\r\n" +
		"a=end-of-candidates\r\n"
	want := "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" +
		"a=candidate:2 1 TCP 1518280447 192.0.2.1 9 typ host tcptype active\r\n" +
		"a=end-of-candidates\r\n"
	if got := OnlyTCPCandidates(in); got != want {
		t.Fatalf("OnlyTCPCandidates:\n%q\nwant\n%q", got, want)
	}
}

// FuzzOnlyTCPCandidates: any input (the check page's offer is outside
// input) gives lines of the input, in order, none of them a candidate over
// anything but TCP, and filtering again changes nothing.
func FuzzOnlyTCPCandidates(f *testing.F) {
	f.Add("v=0\r\na=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\na=candidate:2 1 tcp 1 1.2.3.4 9 typ host tcptype passive\r\n")
	f.Add("a=candidate:\na=candidate:1 1\n\n")
	f.Fuzz(func(t *testing.T, sdp string) {
		out := OnlyTCPCandidates(sdp)
		if len(out) > len(sdp) {
			t.Fatalf("output longer than input")
		}
		if again := OnlyTCPCandidates(out); again != out {
			t.Fatalf("not idempotent: %q then %q", out, again)
		}
		for _, line := range strings.SplitAfter(out, "\n") {
			if c, ok := strings.CutPrefix(line, "a=candidate:"); ok {
				if f := strings.Fields(c); len(f) < 3 || !strings.EqualFold(f[2], "tcp") {
					t.Fatalf("kept a candidate not over TCP: %q", line)
				}
			}
			if !strings.Contains(sdp, line) {
				t.Fatalf("line %q is not the input's", line)
			}
		}
	})
}
