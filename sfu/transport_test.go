package sfu

import (
	"net/netip"
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
