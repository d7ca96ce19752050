package node

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// testdata/slices3.h264 is 8 s of 320x240 at 30 fps, H.264 Constrained
// Baseline with ONE keyframe at the start, every picture in three slices,
// an access unit delimiter before each (made with
// `ffmpeg -f lavfi -i testsrc=size=320x240:rate=30 -t 8 -c:v libx264
// -profile:v baseline -b:v 250k -x264-params
// slices=3:keyint=1000:min-keyint=1000:scenecut=0:aud=1:bframes=0
// -bsf:v h264_mp4toannexb -f h264`).

// accessUnits splits an Annex B stream at its access unit delimiters.
func accessUnits(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	aud := []byte{0, 0, 0, 1, 0x09}
	var out [][]byte
	for len(data) > 0 {
		next := bytes.Index(data[1:], aud)
		if next < 0 {
			out = append(out, data)
			break
		}
		out = append(out, data[:next+1])
		data = data[next+1:]
	}
	return out
}

// An H.264 broadcast whose only keyframe is a STAP-A (SPS, PPS) and an IDR
// in three slices, long gone by when a viewer joins: the late viewer's first
// video packet is the STAP-A, and Chromium decodes its first frame from the
// cached picture, without asking the broadcaster for a new keyframe (this
// publisher could not send one anyway).
func TestBrowser_H264LateJoinerDecodesFromTheCachedPicture(t *testing.T) {
	n := startNode(t, nil)
	aus := accessUnits(t, "testdata/slices3.h264")
	if len(aus) < 200 {
		t.Fatalf("%d access units in the test stream", len(aus))
	}
	baseline := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: baseline, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	pub := newTestPCWith(t, me)
	video, _ := webrtc.NewTrackLocalStaticSample(baseline, "cam", "h264")
	audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "mic", "h264")
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		if _, err := pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	c := &whipClient{pc: pub}
	if resp := c.post(t, n.base+"/whip/h264late", n.token("h264late", "obs", true, false)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHIP POST: %d %s", resp.StatusCode, b)
	}
	connected := make(chan struct{})
	pub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			select {
			case <-connected:
			default:
				close(connected)
			}
		}
	})
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("publisher did not connect")
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		for i := 0; i < len(aus); i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = video.WriteSample(media.Sample{Data: aus[i], Duration: time.Second / 30})
				_ = audio.WriteSample(media.Sample{Data: make([]byte, 80), Duration: time.Second / 30})
			}
		}
	}()
	defer func() { close(stop); <-done }()

	// Join two seconds in: sixty pictures after the only keyframe.
	time.Sleep(2 * time.Second)
	plisSent := n.engine.Stats().PLIsSent

	// A Pion viewer looks at the first packet it gets.
	first := make(chan byte, 1)
	viewer := newTestPC(t)
	if _, err := viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p, _, err := tr.ReadRTP()
		if err != nil || len(p.Payload) == 0 {
			return
		}
		first <- p.Payload[0] & 0x1f
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
		}
	})
	vc := &whipClient{pc: viewer}
	if resp := vc.post(t, n.base+"/whep/h264late", n.token("h264late", "pion-viewer", false, true)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHEP POST: %d %s", resp.StatusCode, b)
	}
	select {
	case nal := <-first:
		if nal != 24 {
			t.Fatalf("late viewer's first video packet is NAL type %d, want 24 (the STAP-A with SPS and PPS)", nal)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("late Pion viewer got no video")
	}

	// Chromium, joining late as well, decodes.
	b := newBrowser(t)
	watch(t, b.ctx, n, "h264late", "whep")
	s := waitPage(t, b.ctx, "30 decoded H.264 frames at 320x240", haloStatsJS, func(s watchStats) bool {
		return s.FramesDecoded > 30 && s.FrameWidth == 320 && s.FrameHeight == 240
	})
	if s.FirstFrameMs != nil {
		t.Logf("Chromium's first decoded frame %.0f ms after it started watching", *s.FirstFrameMs)
	}
	st := n.engine.Stats()
	if st.PLIsSent != plisSent {
		t.Errorf("%d keyframe requests went to the broadcaster after the viewers joined, want none", st.PLIsSent-plisSent)
	}
	if st.PLIsReceived != 0 {
		t.Errorf("viewers reported %d picture losses: the cached picture did not decode", st.PLIsReceived)
	}
	assertNoPageProblems(t, b)
}
