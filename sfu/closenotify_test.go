package sfu

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// byeViewer is a real Pion viewer that writes down, in order, the RTCP BYE
// and the connection states it sees.
type byeViewer struct {
	pc      *webrtc.PeerConnection
	sub     *Subscriber
	started chan struct{}

	mu     sync.Mutex
	events []string // "bye", or a connection state
	byes   []uint32 // the sources the BYE named
	ssrc   uint32
}

func (v *byeViewer) note(ev string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.events = append(v.events, ev)
}

func (v *byeViewer) seen() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.events...)
}

func newByeViewer(t *testing.T, e *Engine, tr *Track) *byeViewer {
	t.Helper()
	pc := testutil.LoopbackPeer(t, testutil.PeerOptions{})
	v := &byeViewer{pc: pc, started: make(chan struct{})}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { v.note(s.String()) })
	var once sync.Once
	pc.OnTrack(func(track *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
		v.mu.Lock()
		v.ssrc = uint32(track.SSRC())
		v.mu.Unlock()
		go func() {
			for {
				pkts, _, err := rc.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if b, ok := p.(*rtcp.Goodbye); ok {
						v.mu.Lock()
						v.byes = append(v.byes, b.Sources...)
						v.mu.Unlock()
						v.note("bye")
					}
				}
			}
		}()
		for {
			if _, _, err := track.ReadRTP(); err != nil {
				return
			}
			once.Do(func() { close(v.started) })
		}
	})
	testutil.LocalOffer(t, pc)
	sub, err := e.NewSubscriber(SubscriberEvents{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := sub.AnswerOffer(ctx, pc.LocalDescription().SDP, []*Track{tr})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	v.sub = sub
	return v
}

// waitState waits for the viewer's connection to reach state, and fails
// the test if it does not within limit.
func (v *byeViewer) waitState(t *testing.T, state webrtc.PeerConnectionState, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for v.pc.ConnectionState() != state {
		if time.Now().After(deadline) {
			t.Fatalf("the viewer's connection is %s %s after the server ended the session, want %s (events %v)",
				v.pc.ConnectionState(), limit, state, v.seen())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// When the server ends a handed-over viewer's session, the viewer is told
// as Pion would have told it: an RTCP BYE for its stream, then a DTLS
// close_notify that closes its PeerConnection at once, long before ICE
// consent (5 s to disconnected) would have noticed. Nothing of Pion's own
// teardown at the hand-over reached it: it stayed connected until then.
func TestCloseNotify_ServerEndOfAHandedOverSessionClosesTheViewer(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, _ := feedTrack(t, e, 100, 50)
	v := newByeViewer(t, e, tr)
	select {
	case <-v.started:
	case <-time.After(15 * time.Second):
		t.Fatal("no packet")
	}
	waitHandedOver(t, e, 1)
	h := v.sub.handed.Load()
	if h == nil {
		t.Fatal("the viewer's subscriber was not the one handed over")
	}
	select {
	case <-h.pionClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("Pion's connection was not closed after the hand-over")
	}
	if h.dtls.Load() == nil {
		t.Fatal("no DTLS state was kept at the hand-over")
	}
	// Pion's connection is closed: its teardown (and its close_notify)
	// must not have reached the viewer.
	time.Sleep(500 * time.Millisecond)
	if st := v.pc.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Fatalf("the viewer's connection is %s after the hand-over (events %v)", st, v.seen())
	}

	if err := v.sub.Close(); err != nil {
		t.Fatal(err)
	}
	// Consent would take 5 s to say disconnected and about 30 s to say
	// failed; only the close_notify makes Pion's viewer close.
	v.waitState(t, webrtc.PeerConnectionStateClosed, 4*time.Second)
	ev := v.seen()
	bye, closed := -1, -1
	for i, s := range ev {
		switch s {
		case "bye":
			bye = i
		case webrtc.PeerConnectionStateClosed.String():
			closed = i
		case webrtc.PeerConnectionStateDisconnected.String(), webrtc.PeerConnectionStateFailed.String():
			t.Fatalf("the viewer's connection went %s before it closed (events %v)", s, ev)
		}
	}
	if bye < 0 || bye > closed {
		t.Fatalf("the RTCP BYE did not arrive before the close: events %v", ev)
	}
	v.mu.Lock()
	byes, ssrc := v.byes, v.ssrc
	v.mu.Unlock()
	if len(byes) != 1 || byes[0] != ssrc {
		t.Fatalf("the BYE named %v, want the viewer's stream %d", byes, ssrc)
	}
}

// The goodbye is said once: the DTLS state is dropped with the
// close_notify, so its record numbers can never be used a second time.
func TestCloseNotify_SentOnce(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, _ := feedTrack(t, e, 100, 50)
	v := newByeViewer(t, e, tr)
	<-v.started
	waitHandedOver(t, e, 1)
	h := v.sub.handed.Load()
	<-h.pionClosed
	h.sayGoodbye()
	if h.dtls.Load() != nil {
		t.Fatal("the DTLS state was kept after the close_notify: it could be used twice")
	}
	v.waitState(t, webrtc.PeerConnectionStateClosed, 4*time.Second)
	h.sayGoodbye() // nothing: the state is gone
	if err := v.sub.Close(); err != nil {
		t.Fatal(err)
	}
}

// A handed-over viewer cannot renegotiate, so when one of its tracks is
// taken away (the track ended while the session goes on) it is told with
// an RTCP BYE for that stream, as Pion's sender would, and stays
// connected.
func TestCloseNotify_RemovedTrackIsAnnouncedWithABye(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, _ := feedTrack(t, e, 100, 50)
	v := newByeViewer(t, e, tr)
	select {
	case <-v.started:
	case <-time.After(15 * time.Second):
		t.Fatal("no packet")
	}
	waitHandedOver(t, e, 1)
	if err := v.sub.RemoveTrack(tr.Info().ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * time.Second)
	for {
		v.mu.Lock()
		byes, ssrc := v.byes, v.ssrc
		v.mu.Unlock()
		if len(byes) == 1 && byes[0] == ssrc {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after its track was removed the viewer got BYEs for %v, want its stream %d", byes, ssrc)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := v.pc.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
		t.Fatalf("the viewer's connection is %s after one track was removed, want connected", st)
	}
}
