package node

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// OBS-style WHIP ingest of H.264 (High profile) reaches a WHEP player as
// H.264 High under the payload type the player gave that profile.
func TestWHIP_H264HighProfileReachesWHEPViewer(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// An encoder configured for High profile offers only that.
	high := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032"}
	// Annex B: SPS, PPS, then an IDR slice (every frame a keyframe).
	frame := append([]byte{0, 0, 0, 1, 0x67, 0x64, 0x00, 0x32, 0xac, 0, 0, 0, 1, 0x68, 0xee, 0x3c, 0x80, 0, 0, 0, 1, 0x65}, make([]byte, 3000)...)
	whipPublishFrame(t, n, "h264", high, 112, frame)

	_, tracks := whepWatch(t, n, "h264", webrtc.RTPCodecTypeVideo)
	select {
	case tr := <-tracks:
		if codec := tr.Codec(); !strings.EqualFold(codec.MimeType, webrtc.MimeTypeH264) || !strings.Contains(codec.SDPFmtpLine, "profile-level-id=64") {
			t.Fatalf("viewer got %s %q, want H.264 High", codec.MimeType, codec.SDPFmtpLine)
		}
	case <-ctx.Done():
		t.Fatal("WHEP viewer received no H.264")
	}
}

// A WHIP publisher of H.265 (a hardware encoder offering only that) reaches
// a WHEP viewer that accepts H.265, starting on its keyframe.
func TestWHIP_H265ReachesWHEPViewer(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h265 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}
	// Annex B: VPS, SPS, PPS, then an IDR_W_RADL slice.
	frame := []byte{0, 0, 0, 1, 0x40, 0x01, 0x0c, 0, 0, 0, 1, 0x42, 0x01, 0x01, 0, 0, 0, 1, 0x44, 0x01, 0xc1, 0, 0, 0, 1, 0x26, 0x01}
	whipPublishFrame(t, n, "h265", h265, 116, append(frame, make([]byte, 3000)...))
	_, tracks := whepWatch(t, n, "h265", webrtc.RTPCodecTypeVideo)
	select {
	case tr := <-tracks:
		if !strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeH265) {
			t.Fatalf("viewer got %s, want H.265", tr.Codec().MimeType)
		}
	case <-ctx.Done():
		t.Fatal("WHEP viewer received no H.265")
	}
	if n.engine.Stats().Replays == 0 {
		t.Error("the viewer was not started on the cached H.265 keyframe")
	}
}

// whipPublishFrame publishes one video track of codec (payload type pt) over
// WHIP and sends frame as every picture at 30 fps until the test ends.
func whipPublishFrame(t *testing.T, n *testNode, room string, codec webrtc.RTPCodecCapability, pt webrtc.PayloadType, frame []byte) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: codec, PayloadType: pt}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	pub := newTestPCWith(t, me)
	video, _ := webrtc.NewTrackLocalStaticSample(codec, "cam", "enc")
	if _, err := pub.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	c := &whipClient{pc: pub}
	if resp := c.post(t, n.base+"/whip/"+room, n.token(room, "encoder", true, false)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHIP POST: %d %s", resp.StatusCode, b)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = video.WriteSample(media.Sample{Data: frame, Duration: 33 * time.Millisecond})
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	testutil.Eventually(t, "track published", func() bool { r := n.rooms.Room(room); return r != nil && len(r.Tracks()) == 1 })
}
