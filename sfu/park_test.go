package sfu

import (
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
)

// recvOffer is a WHEP player's receive-only video offer, from a real Pion
// peer that is closed again: the sessions answered with it never start ICE.
func recvOffer(t *testing.T) string {
	t.Helper()
	pc := testutil.LoopbackPeer(t, testutil.PeerOptions{})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer := testutil.LocalOffer(t, pc)
	_ = pc.Close()
	return offer
}

// heapNow is the live heap after a collection.
func heapNow() uint64 {
	var ms runtime.MemStats
	for range 2 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// WHEP sessions whose players never start ICE (bots, a page closed after
// its POST) are answered, then parked: until a check names them they hold
// no goroutine, a few KiB, and nothing of their track's forwarding.
func TestPark_NeverCheckingSessionsHoldNoGoroutineAndFewKiB(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, _ := feedTrack(t, e, 100, 50)
	offer := recvOffer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// One session first: the engine's certificate and Pion's shared
	// state exist before the baseline.
	warm, err := e.NewSubscriber(SubscriberEvents{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := warm.AnswerOffer(ctx, offer, []*Track{tr}); err != nil {
		t.Fatal(err)
	}
	_ = warm.Close()
	testutil.Eventually(t, "the warm-up session's goroutines end", func() bool { return e.Stats().Subscribers == 0 })
	time.Sleep(500 * time.Millisecond)
	goroutines, heap := runtime.NumGoroutine(), heapNow()

	const n = 300
	subs := make([]*Subscriber, 0, n)
	defer func() {
		for _, s := range subs {
			_ = s.Close()
		}
	}()
	for range n {
		s, err := e.NewSubscriber(SubscriberEvents{OnFailed: func() { t.Error("a parked session was reported failed") }})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
		answer, err := s.AnswerOffer(ctx, offer, []*Track{tr})
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^a=ssrc:\d+ `).MatchString(answer) || !regexp.MustCompile(`(?m)^a=candidate:`).MatchString(answer) {
			t.Fatalf("the answer has no SSRC or no candidate:\n%s", answer)
		}
	}
	if p := e.Stats().Parked; p != n {
		t.Fatalf("%d parked connections, want %d", p, n)
	}
	var extra int
	testutil.Eventually(t, "the closed Pion connections' goroutines end", func() bool {
		extra = runtime.NumGoroutine() - goroutines
		return extra <= 5
	})
	perSession := (float64(heapNow()) - float64(heap)) / n
	t.Logf("%d parked sessions: %+d goroutines, %.1f KiB of heap each", n, extra, perSession/1024)
	if perSession > 8<<10 {
		t.Errorf("a parked session holds %.1f KiB, want a few (at most 8)", perSession/1024)
	}
	if d := e.Stats().DownTracks; d != 0 {
		t.Errorf("%d down-tracks on the track with only parked sessions, want 0: the forwarder works for nobody", d)
	}
	for _, s := range subs {
		_ = s.Close()
	}
	if p := e.Stats().Parked; p != 0 {
		t.Errorf("%d parked connections after every session closed, want 0", p)
	}
}

// A player whose first check comes late (its answer applied a second after
// the POST) gets the media its answer described: the connection comes back
// with the same credentials and certificate, and packets arrive under the
// SSRC the answer gave. It is then handed over from Pion as any other.
func TestPark_LateCheckBringsTheConnectionBack(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, _ := feedTrack(t, e, 100, 50)
	pc := testutil.LoopbackPeer(t, testutil.PeerOptions{ReplayWindow: 1024})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	got := make(chan uint32, 1)
	pc.OnTrack(func(r *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p, _, err := r.ReadRTP()
		if err == nil {
			got <- p.SSRC
		}
		buf := make([]byte, 1500)
		for {
			if _, _, err := r.Read(buf); err != nil {
				return
			}
		}
	})
	offer := testutil.LocalOffer(t, pc)
	connected := make(chan struct{})
	sub, err := e.NewSubscriber(SubscriberEvents{OnConnected: func() { close(connected) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	answer, err := sub.AnswerOffer(ctx, offer, []*Track{tr})
	if err != nil {
		t.Fatal(err)
	}
	if p := e.Stats().Parked; p != 1 {
		t.Fatalf("%d parked connections after the answer, want 1", p)
	}
	m := regexp.MustCompile(`(?m)^a=ssrc:(\d+) `).FindStringSubmatch(answer)
	if m == nil {
		t.Fatalf("no SSRC in the answer:\n%s", answer)
	}
	want, _ := strconv.ParseUint(m[1], 10, 32)
	time.Sleep(time.Second)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case ssrc := <-got:
		if uint64(ssrc) != want {
			t.Fatalf("media under SSRC %d, the answer said %d", ssrc, want)
		}
	case <-ctx.Done():
		t.Fatal("no media after the late check")
	}
	<-connected
	if s := e.Stats(); s.Parked != 0 || s.Unparked != 1 {
		t.Fatalf("parked %d, brought back %d; want 0 and 1", s.Parked, s.Unparked)
	}
	waitHandedOver(t, e, 1)
}

// Over ICE-TCP (a network that blocks UDP), the first check arrives on a
// TCP connection: it brings the parked connection back too.
func TestPark_ICETCPCheckBringsTheConnectionBack(t *testing.T) {
	cfg := config.Default().SFU
	cfg.UDPPort = 0
	cfg.UDPAddress = "127.0.0.1"
	cfg.IncludeLoopback = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TCPPort = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	e, err := NewEngine(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	tr, _ := feedTrack(t, e, 100, 50)

	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	media := make(chan struct{})
	pc.OnTrack(func(r *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		if _, _, err := r.Read(buf); err == nil {
			close(media)
		}
		for {
			if _, _, err := r.Read(buf); err != nil {
				return
			}
		}
	})
	offer := testutil.LocalOffer(t, pc)
	sub, err := e.NewSubscriber(SubscriberEvents{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	answer, err := sub.AnswerOffer(ctx, offer, []*Track{tr})
	if err != nil {
		t.Fatal(err)
	}
	if p := e.Stats().Parked; p != 1 {
		t.Fatalf("%d parked connections after the answer, want 1", p)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-media:
	case <-ctx.Done():
		t.Fatal("no media over ICE-TCP")
	}
	if s := e.Stats(); s.Parked != 0 || s.Unparked != 1 {
		t.Fatalf("parked %d, brought back %d; want 0 and 1", s.Parked, s.Unparked)
	}
}

// A parked session whose track ends (the broadcast is over before the
// player checked) loses it at once, and the player that checks later still
// connects: the media section of the gone track is given up.
func TestPark_TrackEndingWhileParked(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, _ := feedTrack(t, e, 100, 50)
	pc := testutil.LoopbackPeer(t, testutil.PeerOptions{})
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer := testutil.LocalOffer(t, pc)
	connected := make(chan struct{})
	sub, err := e.NewSubscriber(SubscriberEvents{OnConnected: func() { close(connected) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	answer, err := sub.AnswerOffer(ctx, offer, []*Track{tr})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.RemoveTrack(tr.info.ID); err != nil {
		t.Fatalf("removing a parked session's track: %v", err)
	}
	if ids := sub.TrackIDs(); len(ids) != 0 {
		t.Fatalf("tracks %v after the removal, want none", ids)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("the player did not connect after its track ended while parked")
	}
}
