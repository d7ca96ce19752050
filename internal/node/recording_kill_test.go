package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// A node killed (SIGKILL) in the middle of a recording leaves in the store
// what it had uploaded, playable: EVENT playlists that list only segments
// the store holds, in order, and ffprobe reads the recording's index.m3u8
// as h264 + opus.
func TestRecording_NodeKilledLeavesAPlayableRecording(t *testing.T) {
	needFFmpeg(t, "ffprobe")
	s3 := testutil.StartS3(t)
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret := hex.EncodeToString(b)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	p := runNodeProc(t, "rec-a", secret, httpAddr, []string{
		"HALO_AUTH_SECRET=" + secret,
		"HALO_HTTP_LISTEN=" + httpAddr,
		"HALO_METRICS_LISTEN=",
		"HALO_SFU_UDP_PORT=0",
		"HALO_SFU_UDP_ADDRESS=127.0.0.1",
		"HALO_SFU_INCLUDE_LOOPBACK=true",
		"HALO_NODE_ID=rec-a",
		"HALO_RECORDING_ENABLED=true",
		"HALO_RECORDING_S3_ENDPOINT=" + s3.Endpoint(),
		"HALO_RECORDING_S3_BUCKET=" + s3.Bucket,
		"HALO_RECORDING_S3_REGION=" + testutil.S3Region,
		"HALO_RECORDING_S3_ACCESS_KEY=" + testutil.S3AccessKey,
		"HALO_RECORDING_S3_SECRET_KEY=" + testutil.S3SecretKey,
		"HALO_RECORDING_SPOOL_DIR=" + t.TempDir(),
		"HALO_LOG_LEVEL=info",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.publisher(ctx, "die", loadtest.PublisherConfig{VideoBitrate: testBitrate, Codec: loadtest.CodecH264, KeyframeInterval: time.Second})

	var started recordingAnswer
	testutil.EventuallyWithin(t, 30*time.Second, "the recording starts (once the broadcast is up)", func() bool {
		status, a, _ := recordingCall(t, p.testNode, "POST", "die", p.apiAdmin())
		started = a
		return status == http.StatusCreated
	})
	index := started.Recording.PlaylistURL
	// Killed once the store holds both streams' playlists (the audio
	// rendition's first upload can follow the video's by a segment) and 4
	// video segments.
	testutil.EventuallyWithin(t, 30*time.Second, "4 video segments and the audio playlist in the store", func() bool {
		streams := storedStreams(t, index)
		if len(streams) != 2 {
			return false
		}
		for _, s := range streams {
			if segs, _ := storedSegments(t, s); strings.Contains(s, "video") && len(segs) >= 4 {
				return true
			}
		}
		return false
	})
	p.Kill()

	streams := storedStreams(t, index)
	if len(streams) != 2 {
		t.Fatalf("%d media playlists in the store, want video and audio", len(streams))
	}
	for _, s := range streams {
		segs, vod := storedSegments(t, s)
		if vod {
			t.Errorf("%s ended, though its node was killed", s)
		}
		if len(segs) == 0 {
			t.Errorf("%s lists no segment", s)
		}
		checkStoredInOrder(t, s, segs)
	}
	// A playlist without EXT-X-ENDLIST is live to ffprobe: it would wait
	// for more segments past its probe of 5 s, so it probes 1 s.
	pctx, pcancel := context.WithTimeout(ctx, time.Minute)
	defer pcancel()
	out, err := exec.CommandContext(pctx, needFFmpeg(t, "ffprobe"), "-v", "error", "-analyzeduration", "1000000",
		"-rw_timeout", "20000000", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0", index).Output()
	if err != nil {
		t.Fatalf("ffprobe of what the killed node left: %v", err)
	}
	got := strings.Fields(strings.ReplaceAll(string(out), ",", "/"))
	if !contains(got, "h264/video") || !contains(got, "opus/audio") {
		t.Fatalf("ffprobe of what the killed node left: %q, want h264 video and opus audio", out)
	}
}
