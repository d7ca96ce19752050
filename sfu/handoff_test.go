package sfu

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// waitHandedOver waits until n viewer connections were taken over from Pion.
func waitHandedOver(t *testing.T, e *Engine, n uint64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for e.Stats().HandedOver < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d viewer connections handed over from Pion", e.Stats().HandedOver, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// selectedPairStats returns the viewer's ICE pair statistics: how many
// checks it sent and how many answers it had.
func selectedPairStats(t *testing.T, pc *webrtc.PeerConnection) webrtc.ICECandidatePairStats {
	t.Helper()
	for _, s := range pc.GetStats() {
		if p, ok := s.(webrtc.ICECandidatePairStats); ok && p.Nominated {
			return p
		}
	}
	t.Fatal("the viewer has no nominated ICE pair")
	return webrtc.ICECandidatePairStats{}
}

// Once a WHEP viewer's connection is handed over from Pion, the viewer
// notices nothing: every packet keeps arriving in order, its consent
// checks are answered, sender reports keep coming, and its NACKs and
// picture losses are still served.
func TestHandoff_ViewerKeepsWatchingAfterPionsConnectionCloses(t *testing.T) {
	e := newLoopbackEngine(t)
	var rtts atomic.Int64 // receiver reports that gave a round-trip time
	e.SetQualityObserver(func(r ViewerReport) {
		if r.RTT > 0 {
			rtts.Add(1)
		}
	})
	tr, _ := feedTrack(t, e, 100, 50)
	v := newPionViewerOpts(t, e, true, tr)
	states := make(chan webrtc.PeerConnectionState, 16)
	v.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		select {
		case states <- s:
		default:
		}
	})
	select {
	case <-v.started:
	case <-time.After(15 * time.Second):
		t.Fatal("no packet")
	}
	v.sub.mu.Lock()
	pionPC := v.sub.pc
	v.sub.mu.Unlock()
	waitHandedOver(t, e, 1)
	if v.sub.handed.Load() == nil {
		t.Fatal("the viewer's subscriber was not the one handed over")
	}
	// The hand-over is counted before Pion's connection is closed (on its
	// own goroutine): on a busy machine the close comes a little later.
	if pionPC != nil {
		testutil.Eventually(t, "Pion's connection closed after the hand-over", func() bool {
			return pionPC.ConnectionState() == webrtc.PeerConnectionStateClosed
		})
	}
	testutil.Eventually(t, "the subscriber still holds Pion's connection", func() bool {
		v.sub.mu.Lock()
		defer v.sub.mu.Unlock()
		return v.sub.pc == nil
	})
	for len(states) > 0 {
		<-states // the way up
	}
	rttsAt := rtts.Load()
	at := len(v.received())
	checks := selectedPairStats(t, v.pc)
	v.mu.Lock()
	srs, ssrc := len(v.srs), v.ssrc
	v.mu.Unlock()

	// Pion's viewer checks its pair every 2 s: let a few go by.
	time.Sleep(4500 * time.Millisecond)
	got := v.received()
	if len(got)-at < 300 {
		t.Fatalf("%d packets in 4.5 s after the hand-over, want ~450", len(got)-at)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("packet %d follows %d (%d packets before the hand-over)", got[i], got[i-1], at)
		}
	}
	after := selectedPairStats(t, v.pc)
	if after.RequestsSent <= checks.RequestsSent || after.ResponsesReceived-checks.ResponsesReceived < after.RequestsSent-checks.RequestsSent-1 {
		t.Fatalf("consent checks after the hand-over: %d sent, %d answered", after.RequestsSent-checks.RequestsSent, after.ResponsesReceived-checks.ResponsesReceived)
	}
	v.mu.Lock()
	newSRs := len(v.srs) - srs
	v.mu.Unlock()
	if newSRs < 3 {
		t.Fatalf("%d sender reports in 4.5 s after the hand-over", newSRs)
	}
	// The viewer's receiver reports echo ours: the round-trip time is
	// still measured.
	if n := rtts.Load() - rttsAt; n < 3 {
		t.Fatalf("%d receiver reports with a round-trip time in 4.5 s after the hand-over", n)
	}
	select {
	case s := <-states:
		t.Fatalf("the viewer's connection went %s", s)
	default:
	}

	// Feedback still works: a NACK is answered from the cache, a picture
	// loss counted.
	before := e.Stats()
	lost := []uint16{got[len(got)-20], got[len(got)-10]}
	var nacks []rtcp.NackPair
	for _, s := range lost {
		nacks = append(nacks, rtcp.NackPair{PacketID: s})
	}
	if err := v.pc.WriteRTCP([]rtcp.Packet{
		&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: nacks},
		&rtcp.PictureLossIndication{MediaSSRC: ssrc},
	}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the NACK after the hand-over was not answered", func() bool {
		st := e.Stats()
		return st.NACKsAnswered-before.NACKsAnswered == uint64(len(lost)) && st.PLIsReceived > before.PLIsReceived
	})
	testutil.Eventually(t, "the resent packets did not arrive", func() bool {
		seen := map[uint16]int{}
		for _, s := range v.received() {
			seen[s]++
		}
		return seen[lost[0]] == 2 && seen[lost[1]] == 2
	})
}

// A handed-over viewer that closes its connection (DTLS close_notify)
// leaves once it has sent nothing else for the alert's grace; a forged
// alert (from anyone who can spoof the viewer's address) does not end a
// session whose viewer is still there; a viewer that goes silent is
// dropped after the timeout and counted as an ICE failure.
func TestHandoff_ViewerLeavingOrSilentEndsTheSession(t *testing.T) {
	e := newLoopbackEngine(t)
	e.handedOff.alertGrace.Store(int64(1500 * time.Millisecond))
	tr, _ := feedTrack(t, e, 100, 50)
	closing := newPionViewer(t, e, tr)
	silent := newPionViewer(t, e, tr)
	<-closing.started
	<-silent.started
	waitHandedOver(t, e, 2)
	if n := e.Stats().Subscribers; n != 2 {
		t.Fatalf("%d subscribers", n)
	}

	// A forged alert "from" the silent viewer while it still watches.
	h := silent.sub.handed.Load()
	h.mu.Lock()
	key := h.key
	h.mu.Unlock()
	h.receive([]byte{21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 2, 0}, key.sock, key.ap)
	time.Sleep(3500 * time.Millisecond) // the grace, and the viewer's next receiver reports
	if n := e.Stats().Subscribers; n != 2 {
		t.Fatalf("a forged DTLS alert ended a session: %d subscribers", n)
	}

	if err := closing.pc.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the closed viewer's session stayed", func() bool { return e.Stats().Subscribers == 1 })
	closing.sub.mu.Lock()
	closed := closing.sub.closed
	closing.sub.mu.Unlock()
	if !closed {
		t.Fatal("the wrong session ended")
	}
	if n := e.q.ice[ICERoleViewer][ICEStageEstablished].Load(); n != 0 {
		t.Fatalf("a viewer closing counted as %d ICE failures", n)
	}

	e.handedOff.silence.Store(int64(2 * time.Second))
	// Stopping the viewer's ICE first: it sends nothing more, not even its
	// DTLS close.
	if err := silent.pc.SCTP().Transport().ICETransport().Stop(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the silent viewer's session stayed", func() bool { return e.Stats().Subscribers == 0 })
	if n := e.q.ice[ICERoleViewer][ICEStageEstablished].Load(); n != 1 {
		t.Fatalf("the silent viewer counted as %d ICE failures, want 1", n)
	}
	if e.handedOff.n.Load() != 0 {
		t.Fatalf("%d handed-over connections left in the engine's set", e.handedOff.n.Load())
	}
}

// An ICE restart (a WHEP PATCH) of a handed-over viewer: the viewer's new
// checks, from its new address, are answered with the new credentials, and
// the media follows the pair there.
func TestHandoff_ICERestartMovesThePair(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, _ := feedTrack(t, e, 100, 50)
	v := newPionViewer(t, e, tr)
	<-v.started
	waitHandedOver(t, e, 1)
	states := make(chan webrtc.ICEConnectionState, 32)
	v.pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		select {
		case states <- s:
		default:
		}
	})
	firstUfrag := v.sub.RemoteUfrag()
	answer := v.pc.RemoteDescription().SDP
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	restart := gatheredOffer(t, v.pc, &webrtc.OfferOptions{ICERestart: true})
	creds, err := iceFragmentOf(restart)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.sub.RestartICE(ctx, creds.Ufrag, creds.Pwd)
	if err != nil {
		t.Fatalf("RestartICE: %v", err)
	}
	if got.Ufrag == "" || len(got.Candidates) == 0 {
		t.Fatalf("restart answered %+v", got)
	}
	if r := v.sub.RemoteUfrag(); r == firstUfrag || r != creds.Ufrag {
		t.Fatalf("remote ufrag %q after the restart, want the client's new %q", r, creds.Ufrag)
	}
	newAnswer, err := withICECredentials(answer, got.Ufrag, got.Pwd)
	if err != nil {
		t.Fatal(err)
	}
	oldPath := v.sub.link.path.Load()
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: newAnswer}); err != nil {
		t.Fatal(err)
	}
	waitICE(t, states, webrtc.ICEConnectionStateChecking)
	waitICE(t, states, webrtc.ICEConnectionStateConnected)
	pair, err := v.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("no pair after the restart: %v", err)
	}
	// Pion's viewer gathers new candidates (new sockets) for a restart.
	if pair.Local.Port == uint16(oldPath.ap.Port()) {
		t.Fatalf("the viewer's pair stayed on port %d: the restart did not move it", pair.Local.Port)
	}
	at := len(v.received())
	testutil.Eventually(t, "no media after the restart", func() bool { return len(v.received()) > at+100 })
	if p := v.sub.link.path.Load(); p.ap.Port() != pair.Local.Port {
		t.Fatalf("media goes to port %d, the viewer's new pair is on %d", p.ap.Port(), pair.Local.Port)
	}
}

// FuzzHandedOverPacket feeds what a handed-over viewer's address sends
// (anything: STUN, DTLS, SRTCP, garbage) to its connection and to the
// check-by-ufrag lookup: no panic, and the connection stays filed under
// exactly the address its media goes to.
func FuzzHandedOverPacket(f *testing.F) {
	e := newLoopbackEngine(f)
	sub, err := e.NewSubscriber(SubscriberEvents{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = sub.Close() })
	sock := e.socks[0]
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = peer.Close() })
	from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	other := netip.AddrPortFrom(from.Addr(), from.Port()+1)
	keys := &leanKeys{profile: srtp.ProtectionProfileAeadAes128Gcm,
		key: bytes.Repeat([]byte{1}, 16), salt: bytes.Repeat([]byte{2}, 12),
		remoteKey: bytes.Repeat([]byte{3}, 16), remoteSalt: bytes.Repeat([]byte{4}, 12)}

	// Seeds: what a viewer does send.
	viewer, err := srtp.CreateContext(keys.remoteKey, keys.remoteSalt, keys.profile)
	if err != nil {
		f.Fatal(err)
	}
	rr, _ := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 7}}},
		&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 7, Nacks: []rtcp.NackPair{{PacketID: 5, LostPackets: 3}}},
	})
	srtcpRR, err := viewer.EncryptRTCP(nil, rr, nil)
	if err != nil {
		f.Fatal(err)
	}
	check := func(user, pwd string, nominate bool) []byte {
		setters := []stun.Setter{stun.TransactionID, stun.BindingRequest, stun.NewUsername(user)}
		if nominate {
			setters = append(setters, stun.RawAttribute{Type: stun.AttrUseCandidate})
		}
		setters = append(setters, stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
		m, err := stun.Build(setters...)
		if err != nil {
			f.Fatal(err)
		}
		return m.Raw
	}
	answer := func(pwd string) []byte { // a binding success, as to a check of ours
		m, err := stun.Build(stun.TransactionID, stun.BindingSuccess, stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
		if err != nil {
			f.Fatal(err)
		}
		return m.Raw
	}
	for _, seed := range [][]byte{
		check("local:remote", "localpassword", false),
		check("local:remote", "localpassword", true),
		check("local:remote", "wrongpassword", true),
		check("restart:remote", "restartpassword", true),
		answer("remotepassword"),
		srtcpRR,
		{21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0}, // a DTLS alert
		{22, 0xfe, 0xfd},
		{0x80, 0xc9, 0, 1},
		{},
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, pkt []byte, fromOther bool) {
		h, err := newHandedOff(sub, keys)
		if err != nil {
			t.Fatal(err)
		}
		h.ufrag, h.pwd, h.remoteUfrag, h.remotePwd = "local", "localpassword", "remote", "remotepassword"
		h.key = handoffKey{sock, from}
		h.lastIn.Store(monoNow())
		sub.link.path.Store(&leanPath{sock: sock, addr: net.UDPAddrFromAddrPort(from), ap: from})
		e.handedOff.put(h.key, h)
		defer h.release()
		src := from
		if fromOther {
			src = other
		}
		_ = e.handedOff.byCheck(pkt)
		h.receive(pkt, sock, src)
		h.mu.Lock()
		key := h.key
		h.mu.Unlock()
		if e.handedOff.get(key.sock, key.ap) != h {
			t.Fatalf("the connection is not filed under its key %v", key.ap)
		}
		if p := sub.link.path.Load(); p == nil || p.ap != key.ap {
			t.Fatalf("media goes to %v, the connection is filed under %v", p, key.ap)
		}
		if key.ap != from && e.handedOff.get(sock, from) == h {
			t.Fatal("the connection is still filed under its old address")
		}
	})
}
