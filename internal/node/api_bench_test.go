package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
)

// BenchmarkAPI_RemovalAcrossNodes measures how long a removal called on
// one node takes to act on another (docs/benchmarks.md section 21): two
// in-process nodes, a and b, on a real redis-server; a broadcaster
// publishes over WHIP on b; a WebSocket member on a makes a serve the room
// too. Identities v<i> are put in the room on b in batches of up to 20
// (untimed), each twice: a WebSocket member and a WHEP viewer whose media
// is up. After age, each is removed in turn (one op): DELETE
// /api/v1/rooms/bench/participants/v<i> on a, then the wait until the
// WebSocket client got "removed", its socket closed, and the WHEP
// connection closed (the node's DTLS close_notify). It reports p50 and
// p99 over the removals of each, from the start of the call, and of the
// call's answer (which waits for every node serving the room), and
// whep-missed: the WHEP sessions that did not see their end within 10 s
// (they find out from ICE consent, 5 to 30 s later). age "fresh" removes
// a viewer a few milliseconds after its connection is up (its Pion
// connection closes); "watching" after 4 s (the connection is handed over
// from Pion by then: the close_notify is the engine's). Run with a fixed
// count:
//
//	go test -run '^$' -bench RemovalAcrossNodes -benchtime 100x ./internal/node/
func BenchmarkAPI_RemovalAcrossNodes(b *testing.B) {
	for _, age := range []struct {
		name string
		d    time.Duration
	}{{"fresh", 0}, {"watching", 4 * time.Second}} {
		b.Run(age.name, func(b *testing.B) { benchRemovals(b, age.d) })
	}
}

// removalBatch bounds the viewers that watch at once, waiting for their
// removal.
const removalBatch = 20

// benchSession is one identity on b: a WebSocket member and a WHEP viewer.
type benchSession struct {
	id      string
	ws      *loadtest.Conn
	removed chan time.Time
	pc      *webrtc.PeerConnection
	ended   <-chan time.Time
}

func benchRemovals(b *testing.B, age time.Duration) {
	r := testutil.StartRedis(b)
	secret := strings.Repeat("b3", 20)
	a := startBenchNode(b, r, "node-a", "eu", secret)
	bn := startBenchNode(b, r, "node-b", "in", secret)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const room = "bench"
	benchWHIP(b, bn, room)
	if _, err := benchMember(ctx, b, a, room, "a-member"); err != nil {
		b.Fatal(err)
	}
	admin := a.sign(b, auth.Claims{Identity: "ops", Grants: auth.Grants{Admin: true}})

	var answered, removed, closed, whepEnded []time.Duration
	missed := 0
	handedBefore := bn.handedOver(b)
	b.ResetTimer()
	for next := 0; next < b.N; {
		b.StopTimer()
		batch := make([]benchSession, 0, removalBatch)
		for ; next < b.N && len(batch) < removalBatch; next++ {
			batch = append(batch, benchJoin(ctx, b, bn, room, "v"+strconv.Itoa(next)))
		}
		time.Sleep(age)
		b.StartTimer()
		for _, s := range batch {
			start := time.Now()
			req, _ := http.NewRequest(http.MethodDelete, a.base+"/api/v1/rooms/"+room+"/participants/"+s.id+"?reason=bench", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var res apiModerationBody
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &res) != nil || !res.Complete || !appliedOn(res, "node-b", 2) {
				b.Fatalf("DELETE %s on a: %s %s, want complete with 2 sessions removed on node-b", s.id, resp.Status, body)
			}
			answered = append(answered, time.Since(start))
			select {
			case at := <-s.removed:
				removed = append(removed, at.Sub(start))
			case <-time.After(10 * time.Second):
				b.Fatalf("%s: no removed 10 s after the call", s.id)
			}
			select {
			case <-s.ws.Done():
				closed = append(closed, time.Since(start))
			case <-time.After(10 * time.Second):
				b.Fatalf("%s: the socket stayed open 10 s after the call", s.id)
			}
			select {
			case at := <-s.ended:
				whepEnded = append(whepEnded, at.Sub(start))
			case <-time.After(10 * time.Second):
				missed++
				b.Logf("%s: the WHEP connection is still %s (ICE %s) 10 s after the call", s.id, s.pc.ConnectionState(), s.pc.ICEConnectionState())
			}
		}
		b.StopTimer()
		for _, s := range batch {
			_ = s.ws.Close()
			_ = s.pc.Close()
		}
		b.StartTimer()
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"answer", answered}, {"removed", removed}, {"ws-closed", closed}, {"whep-ended", whepEnded}} {
		if len(m.d) == 0 {
			continue
		}
		slices.Sort(m.d)
		for _, q := range []float64{0.50, 0.99} {
			v := m.d[min(len(m.d)-1, int(q*float64(len(m.d))))]
			b.ReportMetric(float64(v)/float64(time.Millisecond), m.name+"-p"+strconv.Itoa(int(q*100))+"-ms")
		}
	}
	b.ReportMetric(float64(missed), "whep-missed")
	b.ReportMetric(bn.handedOver(b)-handedBefore, "handed-over")
}

// handedOver is b's halo_viewers_handed_over_total: WHEP viewers the
// engine took over from Pion.
func (n *benchNode) handedOver(b *testing.B) float64 {
	fams, err := n.registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var v float64
	for _, f := range fams {
		if f.GetName() == "halo_viewers_handed_over_total" {
			for _, m := range f.Metric {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// benchJoin puts identity in room on n: a WebSocket member, then a WHEP
// viewer whose connection is up.
func benchJoin(ctx context.Context, b *testing.B, n *benchNode, room, identity string) benchSession {
	b.Helper()
	ws, err := benchMember(ctx, b, n, room, identity)
	if err != nil {
		b.Fatal(err)
	}
	s := benchSession{id: identity, ws: ws, removed: make(chan time.Time, 1)}
	go func() { // ends with the socket
		for {
			env, err := ws.Next(ctx)
			if err != nil {
				return
			}
			if env.Type == "removed" {
				s.removed <- time.Now()
			}
		}
	}()
	s.pc, s.ended = benchWHEP(b, n, room, identity)
	return s
}

// benchNode is a node of a benchmark (testNode takes a *testing.T).
type benchNode struct {
	*Node
	signer *auth.Signer
	base   string
}

// startBenchNode starts node id of region in a cluster on r, as
// startClusterNode does, with no limit on joins per address; it is shut
// down when b ends.
func startBenchNode(b *testing.B, r *testutil.Redis, id, region, secret string) *benchNode {
	b.Helper()
	c := testutil.NodeConfig()
	c.Auth.Secret = secret
	c.Node.ID, c.Node.Region = id, region
	c.Redis.Addrs = []string{r.Addr()}
	c.Cluster.Secret = testClusterSecret
	c.Cluster.RelayAddress = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(b))
	c.Cluster.HeartbeatInterval = 300 * time.Millisecond
	c.Cluster.NodeTTL = 1500 * time.Millisecond
	c.Limits.JoinsPerIPPerMinute = 0
	c.Limits.APIRequestsPerSecond = 1000
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	return newBenchNode(b, c)
}

func newBenchNode(b *testing.B, c *config.Config) *benchNode {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("HALO_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", c.Node.ID)
	}
	n, err := New(c, log)
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			b.Errorf("shutdown: %v", err)
		}
	})
	signer, err := auth.NewSigner([]byte(c.Auth.Secret))
	if err != nil {
		b.Fatal(err)
	}
	return &benchNode{Node: n, signer: signer, base: "http://" + n.HTTPAddr()}
}

// sign mints c, valid for an hour.
func (n *benchNode) sign(b *testing.B, c auth.Claims) string {
	b.Helper()
	c.IssuedAt, c.ExpiresAt = time.Now(), time.Now().Add(time.Hour)
	tok, err := n.signer.Sign(c)
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// benchMember joins room on n over WebSocket as a watching identity (no
// media); the socket is closed when b ends.
func benchMember(ctx context.Context, b *testing.B, n *benchNode, room, identity string) (*loadtest.Conn, error) {
	b.Helper()
	c, err := loadtest.Dial(ctx, "ws://"+n.HTTPAddr()+"/ws")
	if err != nil {
		return nil, err
	}
	b.Cleanup(func() { _ = c.Close() })
	no := false
	tok := n.sign(b, auth.Claims{Identity: identity, Name: identity, Room: room, Grants: auth.Grants{Subscribe: true}})
	_, err = c.Request(ctx, "join", loadtest.JoinRequest{Token: tok, AutoSubscribe: &no})
	return c, err
}

// benchPC is a Pion client with loopback ICE, closed when b ends.
func benchPC(b *testing.B) *webrtc.PeerConnection {
	b.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		b.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pc.Close() })
	return pc
}

// benchExchange POSTs pc's complete offer to url and applies the answer.
func benchExchange(b *testing.B, pc *webrtc.PeerConnection, url, token string) {
	b.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		b.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		b.Fatal(err)
	}
	<-gathered
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("POST %s: %s %s", url, resp.Status, body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		b.Fatal(err)
	}
}

// benchWHIP publishes keyframe-only VP8 and Opus-sized audio over WHIP on
// n until b ends.
func benchWHIP(b *testing.B, n *benchNode, room string) {
	b.Helper()
	pc := benchPC(b)
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "cam", "whip")
	audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "mic", "whip")
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			b.Fatal(err)
		}
	}
	benchExchange(b, pc, n.base+"/whip/"+room, n.sign(b, auth.Claims{Identity: "whip", Room: room, Grants: auth.Grants{Publish: true}}))
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		frame := append([]byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, make([]byte, 2000)...)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = video.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond})
				_ = audio.WriteSample(media.Sample{Data: make([]byte, 160), Duration: 20 * time.Millisecond})
			}
		}
	}()
	b.Cleanup(func() { close(stop); <-done; _ = pc.Close() })
}

// benchWHEP watches room on n over WHEP as identity until its connection
// is up; ended gets the time it closed (or failed).
func benchWHEP(b *testing.B, n *benchNode, room, identity string) (pc *webrtc.PeerConnection, ended <-chan time.Time) {
	b.Helper()
	tok := n.sign(b, auth.Claims{Identity: identity, Room: room, Grants: auth.Grants{Subscribe: true}})
	var up chan struct{}
	var end chan time.Time
	testutil.Eventually(b, "a WHEP viewer plays on b", func() bool {
		pc = benchPC(b)
		for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				b.Fatal(err)
			}
		}
		up, end = make(chan struct{}, 1), make(chan time.Time, 1)
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			for { // ends when pc closes
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
			}
		})
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			switch s {
			case webrtc.PeerConnectionStateConnected:
				select {
				case up <- struct{}{}:
				default:
				}
			case webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateFailed:
				select {
				case end <- time.Now():
				default:
				}
			}
		})
		benchExchange(b, pc, n.base+"/whep/"+room, tok)
		select {
		case <-up:
			return true
		case <-time.After(10 * time.Second):
			_ = pc.Close()
			return false
		}
	})
	return pc, end
}

// appliedOn reports whether res says node removed n sessions.
func appliedOn(res apiModerationBody, node string, n int) bool {
	for _, x := range res.Nodes {
		if x.Node == node {
			return x.Affected == n
		}
	}
	return false
}
