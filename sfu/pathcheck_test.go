package sfu

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// silentPeer is a UDP socket on 127.0.0.1 that the test controls: it
// sends what the test makes it send, never answers, and counts what
// arrives (STUN apart from everything else: media, RTCP, DTLS).
type silentPeer struct {
	conn        *net.UDPConn
	stun, other atomic.Int64 // packets
	otherBytes  atomic.Int64
}

func newSilentPeer(t *testing.T) *silentPeer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &silentPeer{conn: c}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if n > 0 && buf[0] < 4 {
				p.stun.Add(1)
			} else {
				p.other.Add(1)
				p.otherBytes.Add(int64(n))
			}
		}
	}()
	t.Cleanup(func() {
		_ = c.Close()
		<-done
	})
	return p
}

// nominate sends a binding request with USE-CANDIDATE and the given
// credentials (USERNAME server:viewer, the viewer's-side integrity with
// the server's password) to the engine, as a controlling viewer would.
func (p *silentPeer) nominate(t *testing.T, to *net.UDPAddr, serverUfrag, viewerUfrag, serverPwd string) {
	t.Helper()
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(serverUfrag+":"+viewerUfrag),
		ice.AttrControlling(1), ice.PriorityAttr(probePriority),
		stun.RawAttribute{Type: stun.AttrUseCandidate},
		stun.NewShortTermIntegrity(serverPwd), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDP(m.Raw, to); err != nil {
		t.Fatal(err)
	}
}

// pathMoves reads halo_ice_path_moves_total by result from a registry
// the engine registered its metrics on.
func pathMoves(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "halo_ice_path_moves_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

// restartViewer restarts the viewer's ICE through the session (a WHEP
// PATCH): it returns the viewer's new credentials, the server's answer,
// and the viewer's answer to apply to complete the restart.
func restartViewer(t *testing.T, v *pionViewer) (ICEFragment, ICEFragment, string) {
	t.Helper()
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
	newAnswer, err := withICECredentials(answer, got.Ufrag, got.Pwd)
	if err != nil {
		t.Fatal(err)
	}
	return creds, got, newAnswer
}

// iceStates records a peer's ICE connection states.
func iceStates(pc *webrtc.PeerConnection) chan webrtc.ICEConnectionState {
	states := make(chan webrtc.ICEConnectionState, 32)
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		select {
		case states <- s:
		default:
		}
	})
	return states
}

// spoofNominations makes each peer nominate itself with the given
// credentials every 100 ms until stop is closed.
func spoofNominations(t *testing.T, peers []*silentPeer, to *net.UDPAddr, serverUfrag, viewerUfrag, serverPwd string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, p := range peers {
				p.nominate(t, to, serverUfrag, viewerUfrag, serverPwd)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return &wg
}

// The ICE reflection of issue 23: a viewer with its own session restarts
// ICE and nominates, with its new credentials, an address that is not its
// own (spoofed: here sockets the test controls that never answer). The
// server checks those addresses first and, as they never answer, sends
// them no media byte; the checks it sends are bounded however many
// nominations arrive, and counted. The viewer's genuine nomination, from
// an address that answers, still moves the stream.
func TestHandoff_SpoofedNominationGetsNoMedia(t *testing.T) {
	e := newLoopbackEngine(t)
	reg := prometheus.NewRegistry()
	e.RegisterMetrics(reg)
	tr, _ := feedTrack(t, e, 100, 50)
	v := newPionViewer(t, e, tr)
	<-v.started
	waitHandedOver(t, e, 1)
	states := iceStates(v.pc)

	creds, got, newAnswer := restartViewer(t, v)
	oldPath := v.sub.link.path.Load()
	server := net.UDPAddrFromAddrPort(oldPath.sock.local)
	spoofed := []*silentPeer{newSilentPeer(t), newSilentPeer(t), newSilentPeer(t)}
	stop := make(chan struct{})
	start := time.Now()
	wg := spoofNominations(t, spoofed, server, got.Ufrag, creds.Ufrag, got.Pwd, stop)
	sent := e.Stats().DirectPackets
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	var checks int64
	for i, p := range spoofed {
		if n := p.other.Load(); n != 0 {
			t.Errorf("spoofed address %d received %d packets (%d bytes) that are not STUN: media went to an address that never answered", i, n, p.otherBytes.Load())
		}
		checks += p.stun.Load()
	}
	// Each spoofed address got its binding success answers (one per
	// request, as any STUN server gives), plus our checks. Our checks are
	// bounded: at most maxPathProbes in flight, each given
	// pathProbeTimeout.
	requests := int64(len(spoofed)) * int64(elapsed/(100*time.Millisecond)+1)
	ours := checks - requests
	if limit := int64(maxPathProbes) * (int64(elapsed/pathProbeTimeout) + 2); ours > limit {
		t.Errorf("the server sent %d checks to spoofed addresses in %s, want at most %d", ours, elapsed.Round(time.Millisecond), limit)
	}
	if p := v.sub.link.path.Load(); p.ap != oldPath.ap {
		t.Fatalf("media moved to %v on a nomination nobody answered from", p.ap)
	}
	// Meanwhile the media went on to the viewer's old address (Pion's
	// viewer, having restarted its side, drops it: the server cannot
	// know).
	if n := e.Stats().DirectPackets - sent; n < 100 {
		t.Fatalf("%d packets sent on the old pair while spoofed nominations came", n)
	}
	m := pathMoves(t, reg)
	if m["unanswered"] < 1 || m["refused"] < 1 || m["moved"] != 0 {
		t.Fatalf("halo_ice_path_moves_total = %v, want unanswered and refused counted, nothing moved", m)
	}

	// The genuine viewer completes its restart: it answers our check from
	// its new address, and the media follows it there.
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: newAnswer}); err != nil {
		t.Fatal(err)
	}
	waitICE(t, states, webrtc.ICEConnectionStateChecking)
	waitICE(t, states, webrtc.ICEConnectionStateConnected)
	pair, err := v.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("no pair after the restart: %v", err)
	}
	testutil.Eventually(t, "the media did not follow the genuine nomination", func() bool {
		return v.sub.link.path.Load().ap.Port() == pair.Local.Port
	})
	at := len(v.received())
	testutil.Eventually(t, "no media after the restart", func() bool { return len(v.received()) > at+100 })
	if m := pathMoves(t, reg); m["moved"] != 1 {
		t.Fatalf("halo_ice_path_moves_total = %v, want one move", m)
	}
	for i, p := range spoofed {
		if n := p.other.Load(); n != 0 {
			t.Errorf("spoofed address %d received %d packets that are not STUN", i, n)
		}
	}
}

// The same spoofed nomination against a viewer whose connection is still
// in Pion (sfu.pion_viewers): Pion's controlled ICE agent selects a pair
// on a nomination only once its own check of that pair has succeeded
// (pion/ice selection.go, controlledSelector.HandleBindingRequest), so the
// address that never answers gets no media either, and the viewer's
// genuine restart still connects.
func TestPionViewer_SpoofedNominationGetsNoMedia(t *testing.T) {
	cfg := config.Default().SFU
	cfg.UDPPort = 0
	cfg.UDPAddress = "127.0.0.1"
	cfg.IncludeLoopback = true
	cfg.PionViewers = true
	e, err := NewEngine(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	tr, _ := feedTrack(t, e, 100, 50)
	v := newPionViewer(t, e, tr)
	<-v.started
	states := iceStates(v.pc)

	creds, got, newAnswer := restartViewer(t, v)
	server := net.UDPAddrFromAddrPort(e.socks[0].local)
	spoofed := []*silentPeer{newSilentPeer(t)}
	stop := make(chan struct{})
	wg := spoofNominations(t, spoofed, server, got.Ufrag, creds.Ufrag, got.Pwd, stop)
	time.Sleep(2 * time.Second)

	// The viewer completes its restart while the spoofed nominations go on.
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: newAnswer}); err != nil {
		t.Fatal(err)
	}
	waitICE(t, states, webrtc.ICEConnectionStateChecking)
	waitICE(t, states, webrtc.ICEConnectionStateConnected)
	at := len(v.received())
	testutil.Eventually(t, "no media after the restart", func() bool { return len(v.received()) > at+100 })
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if e.Stats().HandedOver != 0 {
		t.Fatal("a viewer was handed over with sfu.pion_viewers set")
	}
	if n := spoofed[0].other.Load(); n != 0 {
		t.Fatalf("the spoofed address received %d packets (%d bytes) that are not STUN", n, spoofed[0].otherBytes.Load())
	}
	if spoofed[0].stun.Load() == 0 {
		t.Fatal("the spoofed address got no answer at all: the nominations never reached Pion's agent")
	}
}
