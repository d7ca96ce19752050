package testutil

import (
	"net"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// PeerOptions shape a LoopbackPeer.
type PeerOptions struct {
	// ReplayWindow is the SRTP replay protection window in packets; 0
	// keeps Pion's default. A browser's is 1,024.
	ReplayWindow uint
	// SeeRepeats turns SRTP replay protection off, so that a test sees a
	// packet sent twice (a browser drops the copy).
	SeeRepeats bool
}

// LoopbackPeer is an ordinary Pion peer, as an app would build one:
// default codecs and interceptors (NACK generator and responder, receiver
// reports, transport-cc), gathering on 127.0.0.1 over UDP only, closed
// when t ends.
func LoopbackPeer(t testing.TB, o PeerOptions) *webrtc.PeerConnection {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	if o.ReplayWindow > 0 {
		se.SetSRTPReplayProtectionWindow(o.ReplayWindow)
	}
	se.DisableSRTPReplayProtection(o.SeeRepeats)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// LocalOffer makes pc's offer its local description and waits until ICE
// gathering is complete: the local description then carries every
// candidate, as a WHIP or WHEP client sends it. It returns that SDP.
func LocalOffer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}
