package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// whipClient is a minimal WHIP/WHEP client on Pion for tests.
type whipClient struct {
	pc       *webrtc.PeerConnection
	location string
	etag     string
	stop     chan struct{}
	done     chan struct{}
	ticks    atomic.Int64 // video frames (each with an audio packet) whipPublish sent
}

// newTestPC is a Pion client with Pion's default codecs and loopback ICE,
// closed when the test ends.
func newTestPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	return newTestPCWith(t, me)
}

// newTestPCWith is newTestPC with the codecs of me only.
func newTestPCWith(t *testing.T, me *webrtc.MediaEngine) *webrtc.PeerConnection {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// post sends the complete offer of pc and applies the answer.
func (c *whipClient) post(t *testing.T, url, token string) *http.Response {
	t.Helper()
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	resp := doHTTP(t, "POST", url, token, "application/sdp", c.pc.LocalDescription().SDP, nil)
	if resp.StatusCode != http.StatusCreated {
		return resp
	}
	body, _ := io.ReadAll(resp.Body)
	c.location, c.etag = resp.Header.Get("Location"), resp.Header.Get("ETag")
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatalf("apply answer: %v", err)
	}
	return resp
}

func doHTTP(t *testing.T, method, url, token, ctype, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// whipPublish publishes synthetic VP8 keyframes-only video and Opus-sized
// audio over WHIP until Close.
func whipPublish(t *testing.T, n *testNode, room string) *whipClient {
	t.Helper()
	return whipPublishFrames(t, n, room, 2000)
}

// whipPublishFrames is whipPublish with video frames of frameBytes.
func whipPublishFrames(t *testing.T, n *testNode, room string, frameBytes int) *whipClient {
	t.Helper()
	pc := newTestPC(t)
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "cam", "whip")
	audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "mic", "whip")
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	c := &whipClient{pc: pc, stop: make(chan struct{}), done: make(chan struct{})}
	resp := c.post(t, n.base+"/whip/"+room, n.token(room, "whip", true, false))
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHIP POST: %d %s", resp.StatusCode, b)
	}
	go func() {
		defer close(c.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		// A VP8 keyframe header (RFC 6386 9.1): frame tag, start code, 320x240.
		frame := append([]byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, make([]byte, frameBytes)...)
		for {
			select {
			case <-c.stop:
				return
			case <-tick.C:
				_ = video.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond})
				_ = audio.WriteSample(media.Sample{Data: make([]byte, 160), Duration: 20 * time.Millisecond})
				c.ticks.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.close() })
	return c
}

func (c *whipClient) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	if c.done != nil {
		<-c.done
	}
	_ = c.pc.Close()
}

// A WHIP publisher is an ordinary broadcaster: a WebSocket viewer receives its
// audio and video; DELETE on the session ends the broadcast.
func TestWHIP_PublisherSeenByWebSocketViewer(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := whipPublish(t, n, "whip1")
	if c.location == "" || !strings.HasPrefix(c.location, "/whip/whip1/") || c.etag == "" {
		t.Fatalf("Location %q ETag %q", c.location, c.etag)
	}
	v := n.viewer(ctx, "whip1", "ws-viewer")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "video and audio flow", func() bool { s := v.Stats(); return s.VideoPackets > 20 && s.AudioPackets > 20 })
	resp := doHTTP(t, "DELETE", n.base+c.location, "", "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	testutil.Eventually(t, "broadcast ended", func() bool { return len(n.rooms.Room("whip1").Tracks()) == 0 })
	if resp := doHTTP(t, "DELETE", n.base+c.location, "", "", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second DELETE: %d, want 404", resp.StatusCode)
	}
}

// A WebSocket publisher is seen by a WHEP viewer, which counts as a viewer.
func TestWHEP_ViewerReceivesWebSocketPublisher(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.publisher(ctx, "whep1", loadtest.PublisherConfig{VideoBitrate: 300_000})
	// No waiting for the server to see both tracks: a WHEP viewer arriving
	// as the broadcast starts must get video too, though WHEP cannot
	// renegotiate (the server waits for video the publisher offered).
	c, tracks := whepWatch(t, n, "whep1", webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	kinds := map[string]bool{}
	for len(kinds) < 2 {
		select {
		case tr := <-tracks:
			kinds[tr.Kind().String()] = true
		case <-ctx.Done():
			t.Fatalf("WHEP viewer got tracks %v", kinds)
		}
	}
	testutil.Eventually(t, "WHEP viewer counted", func() bool { return n.rooms.Room("whep1").ViewerCount() == 1 })
	if resp := doHTTP(t, "DELETE", n.base+c.location, "", "", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	testutil.Eventually(t, "WHEP viewer released", func() bool { return n.engine.Stats().DownTracks == 0 })
}

// Trickle and ICE restart through PATCH, guarded by the ETag.
func TestWHIP_PatchTrickleAndICERestart(t *testing.T) {
	n := startNode(t, nil)
	c := whipPublish(t, n, "patch")
	url := n.base + c.location
	frag := "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
	if resp := doHTTP(t, "PATCH", url, "", "application/trickle-ice-sdpfrag", frag, map[string]string{"If-Match": c.etag}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("trickle PATCH: %d", resp.StatusCode)
	}
	if resp := doHTTP(t, "PATCH", url, "", "application/trickle-ice-sdpfrag", frag, map[string]string{"If-Match": `"stale"`}); resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("PATCH with a stale ETag: %d, want 412", resp.StatusCode)
	}
	if resp := doHTTP(t, "PATCH", url, "", "application/trickle-ice-sdpfrag", "hello\r\n", nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("PATCH with garbage: %d, want 400", resp.StatusCode)
	}
	restart := "a=ice-ufrag:newfrag1\r\na=ice-pwd:newpasswordnewpassword12\r\na=mid:0\r\n"
	resp := doHTTP(t, "PATCH", url, "", "application/trickle-ice-sdpfrag", restart, map[string]string{"If-Match": c.etag})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "a=ice-ufrag:") || !strings.Contains(string(body), "a=candidate:") {
		t.Fatalf("ICE restart PATCH: %d %q", resp.StatusCode, body)
	}
	if e := resp.Header.Get("ETag"); e == "" || e == c.etag {
		t.Fatalf("ICE restart must change the ETag, got %q", e)
	}
}

// Every WHIP/WHEP error of RFC 9725 section 4 answered with its status and a
// body that says why; the node keeps serving.
func TestWHIP_Errors(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.Limits.ParticipantsPerRoom = 1
		c.SFU.ICEServers = []string{"stun:stun.example.net:3478"}
	})
	pubTok := n.token("errs", "p", true, false)
	subTok := n.token("errs", "s", false, true)
	many := validOffer
	section := validOffer[strings.Index(validOffer, "m=video"):]
	for range 200 {
		many += section
	}
	cases := []struct {
		name, method, path, token, ctype, body string
		status                                 int
		code                                   string
	}{
		{"wrong content type", "POST", "/whip/errs", pubTok, "application/json", validOffer, 415, ""},
		{"no token", "POST", "/whip/errs", "", "application/sdp", validOffer, 401, "unauthorized"},
		{"bad token", "POST", "/whip/errs", "xyz", "application/sdp", validOffer, 401, "unauthorized"},
		{"subscribe-only token publishing", "POST", "/whip/errs", subTok, "application/sdp", validOffer, 403, "forbidden"},
		{"publish-only token watching", "POST", "/whep/errs", pubTok, "application/sdp", validOffer, 403, "forbidden"},
		{"token for another room", "POST", "/whip/other", pubTok, "application/sdp", validOffer, 403, "room_mismatch"},
		{"bad SDP", "POST", "/whip/errs", pubTok, "application/sdp", "v=0\r\nnonsense", 400, "invalid_sdp"},
		{"unsupported codec", "POST", "/whip/errs", pubTok, "application/sdp", strings.Replace(validOffer, "VP8/90000", "theora/90000", 1), 422, "unsupported_codec"},
		{"1 MB body", "POST", "/whip/errs", pubTok, "application/sdp", strings.Repeat("a", 1<<20), 413, ""},
		{"200 m-lines", "POST", "/whip/errs", pubTok, "application/sdp", many, 400, "invalid_sdp"},
		{"nothing to watch", "POST", "/whep/errs", subTok, "application/sdp", strings.Replace(validOffer, "a=sendonly", "a=recvonly", 1), 404, "not_found"},
		{"unknown session DELETE", "DELETE", "/whip/errs/0123", "", "", "", 404, "not_found"},
		{"unknown session PATCH", "PATCH", "/whip/errs/0123", "", "application/trickle-ice-sdpfrag", "a=mid:0\r\n", 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := doHTTP(t, tc.method, n.base+tc.path, tc.token, tc.ctype, tc.body, nil)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.status)
			}
			if tc.code != "" && !strings.HasPrefix(string(body), tc.code+":") {
				t.Fatalf("body %q does not start with %q", body, tc.code)
			}
		})
	}
	// Room full is a conflict (409): one WHIP publisher fills this room.
	whipPublish(t, n, "errs")
	resp := doHTTP(t, "POST", n.base+"/whip/errs", pubTok, "application/sdp", validOffer, nil)
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("full room: %d, want 409", resp.StatusCode)
	}
	// OPTIONS: CORS and the ICE servers as Link headers.
	resp = doHTTP(t, "OPTIONS", n.base+"/whip/errs", "", "", "", map[string]string{"Origin": "https://studio.example"})
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") == "" ||
		!strings.Contains(resp.Header.Get("Link"), `rel="ice-server"`) || resp.Header.Get("Accept-Post") != "application/sdp" {
		t.Fatalf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}
}

// whepWatch opens a WHEP session receiving the given kinds and returns it
// with the remote tracks as they start (each is read until it ends).
func whepWatch(t *testing.T, n *testNode, room string, kinds ...webrtc.RTPCodecType) (*whipClient, <-chan *webrtc.TrackRemote) {
	t.Helper()
	pc := newTestPC(t)
	t.Cleanup(func() { _ = pc.Close() })
	for _, k := range kinds {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	tracks := make(chan *webrtc.TrackRemote, len(kinds))
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		tracks <- tr
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
		}
	})
	c := &whipClient{pc: pc}
	if resp := c.post(t, n.base+"/whep/"+room, n.token(room, "whep", false, true)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, b)
	}
	return c, tracks
}

// A WHIP client that POSTs and never connects (crashed, blocked UDP) does not
// leak: its session is released once ICE gives up.
func TestWHIP_SessionThatNeverConnectsIsReleased(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the ICE failure timeout")
	}
	n := startNode(t, nil)
	resp := doHTTP(t, "POST", n.base+"/whip/ghost", n.token("ghost", "p", true, false), "application/sdp", validOffer, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	location := resp.Header.Get("Location")
	deadline := time.Now().Add(60 * time.Second)
	for n.rooms.Stats().Participants != 0 || n.engine.Stats().Publishers != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("session never released: %+v", n.engine.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp := doHTTP(t, "DELETE", n.base+location, "", "", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("DELETE of the released session: %d, want 404", resp.StatusCode)
	}
}
