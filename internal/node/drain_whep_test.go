package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
)

// whepPlayer is a WHEP player as the embedded one behaves (signaling/web):
// it POSTs its offer with its bearer token, follows a 307 by POSTing the
// same offer with the same token to the Location, and when its connection
// closes or fails it starts a new one, POSTing again to the URL it was
// given first.
type whepPlayer struct {
	t     *testing.T
	url   string // the node it knew
	token string
	// rejoin, when set, is where a connection that replaces an ended one
	// POSTs (a load balancer in front of the nodes) instead of url.
	rejoin string
	video  atomic.Uint64 // video packets received, over every connection

	mu     sync.Mutex
	pc     *webrtc.PeerConnection
	served string   // the URL that answered 201 last
	states []string // connection states of every connection, in order
	closed time.Time
	played time.Time // first video packet of a connection that replaced one
	conns  int
	stop   bool
}

func newWHEPPlayer(t *testing.T, url, token string) *whepPlayer {
	p := &whepPlayer{t: t, url: url, token: token}
	t.Cleanup(func() {
		p.mu.Lock()
		p.stop = true
		pc := p.pc
		p.mu.Unlock()
		if pc != nil {
			_ = pc.Close()
		}
	})
	return p
}

// connect opens a connection and POSTs it, following a drain's 307; again
// says it replaces one that ended.
func (p *whepPlayer) connect(again bool) error {
	pc := newTestPC(p.t)
	p.t.Cleanup(func() { // before newTestPC's own: the end of the test is no end to play again after
		p.mu.Lock()
		p.stop = true
		p.mu.Unlock()
	})
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.conns++
	n := p.conns
	p.pc = pc
	p.mu.Unlock()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				p.video.Add(1)
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo && again {
				p.mu.Lock()
				if p.played.IsZero() {
					p.played = time.Now()
				}
				p.mu.Unlock()
			}
		}
	})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.mu.Lock()
		p.states = append(p.states, fmt.Sprintf("%d:%s", n, s))
		if s == webrtc.PeerConnectionStateClosed && p.closed.IsZero() {
			p.closed = time.Now()
		}
		stop := p.stop
		p.mu.Unlock()
		if stop || (s != webrtc.PeerConnectionStateClosed && s != webrtc.PeerConnectionStateFailed) {
			return
		}
		// The session ended: play again, from the node it knew.
		once.Do(func() {
			go func() {
				if err := p.connect(true); err != nil {
					p.t.Errorf("player reconnect: %v", err)
				}
			}()
		})
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	<-gathered
	sdp := pc.LocalDescription().SDP
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	target := p.url
	if again && p.rejoin != "" {
		target = p.rejoin
	}
	for tries := 0; tries < 50; tries++ {
		req, err := http.NewRequest("POST", target, strings.NewReader(sdp))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+p.token)
		req.Header.Set("Content-Type", "application/sdp")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			p.mu.Lock()
			p.served = target
			p.mu.Unlock()
			return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)})
		case http.StatusTemporaryRedirect:
			loc, err := resp.Location()
			if err != nil {
				return err
			}
			target = loc.String()
		case http.StatusServiceUnavailable:
			time.Sleep(100 * time.Millisecond) // a drain that has not chosen where to send players yet
		default:
			return fmt.Errorf("POST %s: %d %s", target, resp.StatusCode, body)
		}
	}
	return errors.New("too many redirects and retries")
}

func (p *whepPlayer) snapshot() (served string, states []string, closed, played time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served, append([]string(nil), p.states...), p.closed, p.played
}

// Draining a node with WHEP viewers (watching a broadcast relayed from
// another node of its region, their connections handed over from Pion):
// each viewer's connection is closed by a DTLS close_notify (it goes to
// closed, never through disconnected or failed, which is what ICE consent
// would have said after 5 to 30 s), its player POSTs again to the node it
// knew, is sent to the other node by a 307 and plays there within 3 s of
// the drain's start.
func TestDrain_WHEPViewersCloseAndPlayOnAnotherNode(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-node drain")
	}
	r := testutil.StartRedis(t)
	secret := strings.Repeat("c3", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "eu", secret)
	const room = "whep-drain"
	whipPublish(t, b, room)
	testutil.Eventually(t, "b publishes the broadcast", func() bool { return b.engine.Stats().Publishers == 1 })

	const viewers = 3
	players := make([]*whepPlayer, viewers)
	for i := range players {
		players[i] = newWHEPPlayer(t, a.base+"/whep/"+room, a.token(room, fmt.Sprintf("whep-%d", i), false, true))
		// a learns of b's tracks through Redis: until then it answers 404.
		for tries := 0; ; tries++ {
			err := players[i].connect(false)
			if err == nil {
				break
			}
			if tries == 50 || !strings.Contains(err.Error(), ": 404 ") {
				t.Fatalf("player %d: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	testutil.Eventually(t, "the WHEP viewers on a were handed over from Pion", func() bool {
		return a.engine.Stats().HandedOver >= viewers
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	drained := make(chan error, 1)
	go func() { drained <- a.server.Drain(ctx) }()

	bURL, err := url.Parse(b.base)
	if err != nil {
		t.Fatal(err)
	}
	deadline := start.Add(3 * time.Second)
	for i, p := range players {
		for {
			served, states, closed, played := p.snapshot()
			if !played.IsZero() && !closed.IsZero() {
				u, err := url.Parse(served)
				if err != nil || u.Host != bURL.Host {
					t.Fatalf("player %d plays from %s, want b (%s)", i, served, b.base)
				}
				for _, s := range states {
					if strings.HasPrefix(s, "1:") && (strings.HasSuffix(s, "disconnected") || strings.HasSuffix(s, "failed")) {
						t.Fatalf("player %d's first connection went %s: the drain did not close it (states %v)", i, s, states)
					}
				}
				t.Logf("player %d: closed %v and playing on b %v after the drain started", i,
					closed.Sub(start).Round(time.Millisecond), played.Sub(start).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("player %d is not playing on b 3 s after the drain started: closed at %v, states %v",
					i, closed, states)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	// The drain keeps the node answering for a while after it ended the
	// WHEP sessions: a real node that exits at once leaves a player whose
	// new POST comes a moment later with nothing listening (seen with the
	// README's three nodes: the page stayed "connecting").
	var lastClosed time.Time
	for _, p := range players {
		if _, _, closed, _ := p.snapshot(); closed.After(lastClosed) {
			lastClosed = closed
		}
	}
	if d := time.Since(lastClosed); d < 1500*time.Millisecond {
		t.Errorf("the drain returned %v after the last WHEP session ended, want about 2 s of 307s for late POSTs", d.Round(time.Millisecond))
	}
	if n := a.rooms.Stats().Participants; n != 0 {
		t.Errorf("%d participants left on a after its drain", n)
	}
}
