package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/hls"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// hlsSecret signs the HLS URLs of these tests.
var hlsSecret = strings.Repeat("hls-", 10)

// needFFmpeg returns the path of tool (ffmpeg or ffprobe, Debian's ffmpeg
// package) or skips the test saying how to get it.
func needFFmpeg(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s not found (install Debian's ffmpeg package: apt-get install -y ffmpeg): %v", tool, err)
	}
	return p
}

// encodeH264 makes seconds of 320x240 30 fps H.264 Constrained Baseline
// with a keyframe every second and access unit delimiters, in Annex B.
func encodeH264(t *testing.T, seconds int) [][]byte {
	t.Helper()
	ffmpeg := needFFmpeg(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "src.h264")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size=320x240:rate=30", "-t", strconv.Itoa(seconds),
		"-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0",
		"-x264-params", "aud=1:scenecut=0", "-bsf:v", "h264_mp4toannexb", "-f", "h264", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	return accessUnits(t, out)
}

// whipPublishH264 publishes aus (looped, 30 fps) and Opus silence over
// WHIP to room until the test ends, as OBS would.
func whipPublishH264(t *testing.T, n *testNode, room string, aus [][]byte) *whipClient {
	t.Helper()
	baseline := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	return whipPublishVideo(t, n, room, baseline, 102, aus)
}

// whipPublishVideo publishes aus of codec (payload type pt), looped at 30
// fps, and Opus silence over WHIP to room until the test ends.
func whipPublishVideo(t *testing.T, n *testNode, room string, codec webrtc.RTPCodecCapability, pt webrtc.PayloadType, aus [][]byte) *whipClient {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: codec, PayloadType: pt}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	pub := newTestPCWith(t, me)
	video, _ := webrtc.NewTrackLocalStaticSample(codec, "cam", "obs")
	audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "obs")
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		if _, err := pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	c := &whipClient{pc: pub, stop: make(chan struct{}), done: make(chan struct{})}
	if resp := c.post(t, n.base+"/whip/"+room, n.token(room, "obs", true, false)); resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("WHIP POST: %d %s", resp.StatusCode, b)
	}
	go func() {
		defer close(c.done)
		vt, at := time.NewTicker(time.Second/30), time.NewTicker(20*time.Millisecond)
		defer vt.Stop()
		defer at.Stop()
		// An Opus packet of 20 ms of silence (RFC 6716: CELT FB 20 ms, one frame).
		silence := []byte{0xfc, 0xff, 0xfe}
		for i := 0; ; {
			select {
			case <-c.stop:
				return
			case <-vt.C:
				_ = video.WriteSample(media.Sample{Data: aus[i%len(aus)], Duration: time.Second / 30})
				i++
			case <-at.C:
				_ = audio.WriteSample(media.Sample{Data: silence, Duration: 20 * time.Millisecond})
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

// get fetches url and returns the status, headers and body.
func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// playlistURIs returns a playlist's URI lines (and URI="..." attributes).
func playlistURIs(body string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
		if i := strings.Index(l, `URI="`); i >= 0 {
			rest := l[i+5:]
			if j := strings.IndexByte(rest, '"'); j >= 0 {
				out = append(out, rest[:j])
			}
		}
	}
	return out
}

// lastSegment returns the media sequence number of the last whole segment
// a media playlist lists (-1 when none).
func lastSegment(t *testing.T, body string) int {
	t.Helper()
	seq, n := -1, 0
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"); ok {
			s, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("media sequence %q", v)
			}
			seq = s
		}
		if strings.HasPrefix(l, "#EXTINF:") {
			n++
		}
	}
	if seq < 0 {
		t.Fatalf("not a media playlist:\n%s", body)
	}
	return seq + n - 1
}

// ffprobeStreams runs ffprobe on url and returns the codec of each stream.
func ffprobeStreams(t *testing.T, url string) []string {
	t.Helper()
	ffprobe := needFFmpeg(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-rw_timeout", "20000000", "-show_entries", "stream=codec_name,codec_type",
		"-of", "json", url).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ffprobe %s: %v: %s", url, err, stderr)
	}
	var res struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			CodecType string `json:"codec_type"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output %s: %v", out, err)
	}
	var codecs []string
	for _, s := range res.Streams {
		codecs = append(codecs, s.CodecType+"/"+s.CodecName)
	}
	return codecs
}

// An H.264 + Opus broadcast published over WHIP is served as LL-HLS:
// ffprobe (FFmpeg's own HLS and fMP4 readers) finds an h264 video and an
// opus audio stream at the signed /hls/{room}/index.m3u8; parts, segments
// and the init segment are immutable to caches and playlists short-lived,
// with no cookie; a blocking playlist request for the next segment answers
// only once that segment exists; and a bad, tampered or expired signature is
// refused 403 with its code.
func TestHLS_H264BroadcastReadByFFprobe(t *testing.T) {
	aus := encodeH264(t, 4)
	n := startNode(t, func(c *config.Config) { c.HLS.SigningSecret = hlsSecret })
	whipPublishH264(t, n, "tv", aus)
	waitTracks(t, n, "tv", 2)

	signed := "?" + hls.Sign(hlsSecret, "tv", time.Now().Add(time.Hour))
	index := n.base + "/hls/tv/index.m3u8"

	// Signatures: none, tampered, for another room, expired.
	for _, c := range []struct{ query, code string }{
		{"", hls.CodeBadSignature},
		{signed[:len(signed)-2] + "00", hls.CodeBadSignature},
		{"?" + hls.Sign(hlsSecret, "other", time.Now().Add(time.Hour)), hls.CodeBadSignature},
		{"?" + hls.Sign(hlsSecret, "tv", time.Now().Add(-time.Second)), hls.CodeExpired},
		{"?exp=abc&sig=zz", hls.CodeBadSignature},
	} {
		status, _, body := get(t, index+c.query)
		if status != http.StatusForbidden || !strings.HasPrefix(body, c.code+":") {
			t.Errorf("GET index.m3u8%s: %d %q, want 403 %s", c.query, status, body, c.code)
		}
	}

	status, h, body := get(t, index+signed)
	if status != http.StatusOK || !strings.HasPrefix(body, "#EXTM3U") {
		t.Fatalf("GET index.m3u8: %d %q", status, body)
	}
	if cc := h.Get("Cache-Control"); cc != "public, max-age=1" {
		t.Errorf("multivariant playlist Cache-Control %q", cc)
	}
	if h.Get("Set-Cookie") != "" {
		t.Errorf("a cookie was set: %q", h.Get("Set-Cookie"))
	}
	if !strings.Contains(body, "avc1.") || !strings.Contains(body, "opus") {
		t.Errorf("multivariant playlist names no H.264 and Opus codecs:\n%s", body)
	}

	codecs := ffprobeStreams(t, index+signed)
	if !contains(codecs, "video/h264") || !contains(codecs, "audio/opus") {
		t.Fatalf("ffprobe found %v, want video/h264 and audio/opus", codecs)
	}

	// The media playlist: LL-HLS tags, each URI carrying the signature.
	var stream string
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			stream = strings.TrimSpace(l) // the video's playlist (EXT-X-STREAM-INF)
		}
	}
	if !strings.Contains(stream, "sig=") {
		t.Fatalf("stream playlist URI %q lost the signature:\n%s", stream, body)
	}
	media := n.base + "/hls/tv/" + stream
	status, _, mbody := get(t, media)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %q", media, status, mbody)
	}
	for _, tag := range []string{"#EXT-X-PART-INF:", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES", "#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:", "#EXT-X-MAP:"} {
		if !strings.Contains(mbody, tag) {
			t.Errorf("media playlist has no %s:\n%s", tag, mbody)
		}
	}
	for _, u := range playlistURIs(mbody) {
		if !strings.Contains(u, "sig=") {
			t.Errorf("URI %q lost the signature", u)
			continue
		}
		if !strings.Contains(u, "_part") && !strings.Contains(u, "_init") {
			continue
		}
		status, h, _ := get(t, n.base+"/hls/tv/"+u)
		if status != http.StatusOK || h.Get("Cache-Control") != "public, max-age=86400, immutable" {
			t.Errorf("GET %s: %d, Cache-Control %q", u, status, h.Get("Cache-Control"))
		}
		break
	}

	// Blocking reload: segment next is the one being written. Asking for
	// the first part of the segment after it (_HLS_msn=next+1, no
	// _HLS_part: part 0) answers only once segment next is whole.
	next := lastSegment(t, mbody) + 1
	status, h, bbody := get(t, media+"&_HLS_msn="+strconv.Itoa(next+1))
	if status != http.StatusOK {
		t.Fatalf("blocking request for segment %d: %d %q", next+1, status, bbody)
	}
	if got := lastSegment(t, bbody); got < next {
		t.Errorf("blocking request answered before segment %d was whole (segments up to %d):\n%s", next, got, bbody)
	}
	// Beyond what the muxer may promise: refused at once.
	if status, _, _ := get(t, media+"&_HLS_msn="+strconv.Itoa(next+5)); status != http.StatusBadRequest {
		t.Errorf("a request 5 segments ahead: %d, want 400", status)
	}
	if cc := h.Get("Cache-Control"); cc != "public, max-age=6" {
		t.Errorf("blocking playlist Cache-Control %q", cc)
	}
}

// A VP8 broadcast cannot go into HLS without transcoding: the player is
// told so with 415 hls_codec_unsupported; a room with no broadcast is 404
// hls_no_broadcast; a malformed path is 400 hls_bad_path.
func TestHLS_ClearErrors(t *testing.T) {
	n := startNode(t, nil)
	whipPublish(t, n, "vp8")
	waitTracks(t, n, "vp8", 2)
	for _, c := range []struct {
		path   string
		status int
		code   string
		says   string
	}{
		{"/hls/vp8/index.m3u8", http.StatusUnsupportedMediaType, hls.CodeCodecUnsupported, "publish H.264"},
		{"/hls/empty/index.m3u8", http.StatusNotFound, hls.CodeNoBroadcast, "no broadcast"},
		{"/hls/vp8/x_seg1.mp4", http.StatusNotFound, hls.CodeNotFound, "index.m3u8"},
		{"/hls/vp8/../index.m3u8", http.StatusBadRequest, hls.CodeBadPath, ""},
		{"/hls/vp8/index.txt", http.StatusBadRequest, hls.CodeBadPath, ""},
		{"/hls/a%20b/index.m3u8", http.StatusBadRequest, hls.CodeBadPath, ""},
	} {
		status, h, body := get(t, n.base+c.path)
		if status == http.StatusMovedPermanently {
			continue // the mux cleans ".." itself
		}
		if status != c.status || !strings.HasPrefix(body, c.code+":") || !strings.Contains(body, c.says) {
			t.Errorf("GET %s: %d %q, want %d %s", c.path, status, body, c.status, c.code)
		}
		if h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: error cached: %q", c.path, h.Get("Cache-Control"))
		}
	}
	if v, _ := sample(gather(t, n), "halo_hls_errors_total", "code", hls.CodeCodecUnsupported); v != 1 {
		t.Errorf("halo_hls_errors_total{code=hls_codec_unsupported} = %v, want 1", v)
	}
}

func waitTracks(t *testing.T, n *testNode, room string, want int) {
	t.Helper()
	testutil.Eventually(t, "tracks published in "+room, func() bool {
		r := n.rooms.Room(room)
		return r != nil && len(r.Tracks()) >= want
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A room's muxer runs while players ask and stops when they stop: its two
// taps (video, audio) show in halo_down_tracks while it is watched and are
// gone hls.idle_timeout after the last request; the next request starts a
// new muxer.
func TestHLS_StopsWhenUnwatched(t *testing.T) {
	aus := encodeH264(t, 2)
	n := startNode(t, func(c *config.Config) { c.HLS.IdleTimeout = 5 * time.Second })
	whipPublishH264(t, n, "idle", aus)
	waitTracks(t, n, "idle", 2)
	if d := n.engine.Stats().DownTracks; d != 0 {
		t.Fatalf("%d down-tracks before any player", d)
	}
	if status, _, body := get(t, n.base+"/hls/idle/index.m3u8"); status != http.StatusOK {
		t.Fatalf("GET index.m3u8: %d %q", status, body)
	}
	if d := n.engine.Stats().DownTracks; d != 2 {
		t.Fatalf("%d down-tracks while watched, want the muxer's 2 taps", d)
	}
	if v, _ := sample(gather(t, n), "halo_hls_muxers"); v != 1 {
		t.Errorf("halo_hls_muxers %v while watched, want 1", v)
	}
	testutil.Eventually(t, "the unwatched muxer stopped", func() bool { return n.engine.Stats().DownTracks == 0 })
	if v, _ := sample(gather(t, n), "halo_hls_muxers"); v != 0 {
		t.Errorf("halo_hls_muxers %v once unwatched, want 0", v)
	}
	if status, _, body := get(t, n.base+"/hls/idle/index.m3u8"); status != http.StatusOK || !strings.HasPrefix(body, "#EXTM3U") {
		t.Fatalf("GET index.m3u8 after the stop: %d %q", status, body)
	}
}

// What a player decodes is continuous: three seconds of the video read by
// ffprobe through the media playlist have monotonic timestamps without a
// gap longer than two frames, and the parts last what hls.part_duration
// asks (300 ms here: PART-TARGET and every whole part between 300 ms and a
// frame more, the last part of a segment shorter).
func TestHLS_ContinuousAndPartsAsConfigured(t *testing.T) {
	aus := encodeH264(t, 3)
	n := startNode(t, func(c *config.Config) { c.HLS.PartDuration = 300 * time.Millisecond })
	whipPublishH264(t, n, "cont", aus)
	waitTracks(t, n, "cont", 2)
	status, _, body := get(t, n.base+"/hls/cont/index.m3u8")
	if status != http.StatusOK {
		t.Fatalf("GET index.m3u8: %d %q", status, body)
	}
	var stream string
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			stream = strings.TrimSpace(l)
		}
	}
	media := n.base + "/hls/cont/" + stream
	// Let a few segments pass, then look at the parts.
	testutil.Eventually(t, "three segments", func() bool {
		_, _, b := get(t, media)
		return strings.Count(b, "#EXTINF:") >= 3
	})
	_, _, mbody := get(t, media)
	var target float64
	var parts []float64
	for _, l := range strings.Split(mbody, "\n") {
		if v, ok := strings.CutPrefix(l, "#EXT-X-PART-INF:PART-TARGET="); ok {
			target, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		if v, ok := strings.CutPrefix(l, "#EXT-X-PART:DURATION="); ok {
			d, _ := strconv.ParseFloat(v[:strings.IndexByte(v, ',')], 64)
			parts = append(parts, d)
		}
	}
	if target < 0.3 || target > 0.3+1.0/30+0.001 {
		t.Errorf("PART-TARGET %.3f s, want 0.3 s (+ one frame)", target)
	}
	whole := 0
	for _, d := range parts {
		if d > target+0.001 {
			t.Errorf("a part of %.3f s, over PART-TARGET %.3f", d, target)
		}
		if d >= 0.3-0.001 {
			whole++
		}
	}
	if len(parts) < 4 || whole < len(parts)/2 {
		t.Errorf("parts %v: want most of them 0.3 s", parts)
	}

	ffprobe := needFFmpeg(t, "ffprobe")
	out, err := exec.Command(ffprobe, "-v", "error", "-rw_timeout", "20000000", "-select_streams", "v:0",
		"-read_intervals", "%+3", "-show_entries", "packet=pts_time", "-of", "csv=p=0", media).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var pts []float64
	for _, l := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(strings.TrimSuffix(l, ","), 64)
		if err == nil {
			pts = append(pts, v)
		}
	}
	if len(pts) < 60 {
		t.Fatalf("ffprobe read %d video packets in 3 s:\n%s", len(pts), out)
	}
	t.Logf("parts %v (PART-TARGET %.3f); ffprobe read %d video packets, pts %.3f..%.3f", parts, target, len(pts), pts[0], pts[len(pts)-1])
	for i := 1; i < len(pts); i++ {
		if d := pts[i] - pts[i-1]; d <= 0 || d > 2.0/30+0.001 {
			t.Fatalf("packet %d: pts %.3f after %.3f (gap %.3f s)", i, pts[i], pts[i-1], d)
		}
	}
}

// An H.265 broadcast (a hardware encoder over WHIP) passes into LL-HLS as
// it is: ffprobe reads hevc video and opus audio from index.m3u8.
func TestHLS_H265BroadcastReadByFFprobe(t *testing.T) {
	ffmpeg := needFFmpeg(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "src.h265")
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size=320x240:rate=30", "-t", "3", "-c:v", "libx265", "-pix_fmt", "yuv420p",
		"-x265-params", "keyint=30:min-keyint=30:bframes=0:scenecut=0:aud=1:repeat-headers=1:log-level=error", "-f", "hevc", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Access units begin at their delimiters (NAL type 35: 0x46 0x01).
	var aus [][]byte
	aud := []byte{0, 0, 0, 1, 0x46, 0x01}
	for len(data) > 0 {
		next := bytes.Index(data[1:], aud)
		if next < 0 {
			aus = append(aus, data)
			break
		}
		aus = append(aus, data[:next+1])
		data = data[next+1:]
	}
	if len(aus) < 60 {
		t.Fatalf("%d H.265 access units", len(aus))
	}
	n := startNode(t, nil)
	whipPublishVideo(t, n, "hevc", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}, 116, aus)
	waitTracks(t, n, "hevc", 2)
	index := n.base + "/hls/hevc/index.m3u8"
	if status, _, body := get(t, index); status != http.StatusOK || !strings.Contains(body, "hvc1.") {
		t.Fatalf("GET index.m3u8: %d %q", status, body)
	}
	if codecs := ffprobeStreams(t, index); !contains(codecs, "video/hevc") || !contains(codecs, "audio/opus") {
		t.Fatalf("ffprobe found %v, want video/hevc and audio/opus", codecs)
	}
}

// encodeIVF encodes seconds of 320x240 30 fps test video with the ffmpeg
// encoder options given, into IVF, and returns its frames.
func encodeIVF(t *testing.T, seconds int, encoder ...string) [][]byte {
	t.Helper()
	ffmpeg := needFFmpeg(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "src.ivf")
	args := []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size=320x240:rate=30", "-t", strconv.Itoa(seconds), "-pix_fmt", "yuv420p"}
	args = append(append(args, encoder...), "-f", "ivf", out)
	if b, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// IVF: a 32-byte file header, then each frame's 4-byte size, 8-byte
	// timestamp and data.
	var frames [][]byte
	for p := data[32:]; len(p) >= 12; {
		n := int(p[0]) | int(p[1])<<8 | int(p[2])<<16 | int(p[3])<<24
		if n > len(p)-12 {
			t.Fatalf("truncated IVF frame of %d bytes", n)
		}
		frames = append(frames, p[12:12+n])
		p = p[12+n:]
	}
	if len(frames) < 30*seconds-1 {
		t.Fatalf("%d frames encoded", len(frames))
	}
	return frames
}

// A VP9 broadcast passes into LL-HLS as it is (fMP4 vp09): ffprobe reads
// vp9 video and opus audio from index.m3u8.
func TestHLS_VP9BroadcastReadByFFprobe(t *testing.T) {
	frames := encodeIVF(t, 3, "-c:v", "libvpx-vp9", "-g", "30", "-keyint_min", "30", "-deadline", "realtime",
		"-cpu-used", "8", "-b:v", "300k", "-auto-alt-ref", "0", "-lag-in-frames", "0")
	n := startNode(t, nil)
	whipPublishVideo(t, n, "vp9", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}, 98, frames)
	waitTracks(t, n, "vp9", 2)
	index := n.base + "/hls/vp9/index.m3u8"
	if status, _, body := get(t, index); status != http.StatusOK || !strings.Contains(body, "vp09.") {
		t.Fatalf("GET index.m3u8: %d %q", status, body)
	}
	if codecs := ffprobeStreams(t, index); !contains(codecs, "video/vp9") || !contains(codecs, "audio/opus") {
		t.Fatalf("ffprobe found %v, want video/vp9 and audio/opus", codecs)
	}
}

// An AV1 broadcast passes into LL-HLS as it is (fMP4 av01): ffprobe reads
// av1 video and opus audio from index.m3u8.
func TestHLS_AV1BroadcastReadByFFprobe(t *testing.T) {
	frames := encodeIVF(t, 3, "-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-g", "30",
		"-keyint_min", "30", "-lag-in-frames", "0", "-b:v", "300k")
	n := startNode(t, nil)
	whipPublishVideo(t, n, "av1", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, 45, frames)
	waitTracks(t, n, "av1", 2)
	index := n.base + "/hls/av1/index.m3u8"
	if status, _, body := get(t, index); status != http.StatusOK || !strings.Contains(body, "av01.") {
		t.Fatalf("GET index.m3u8: %d %q", status, body)
	}
	if codecs := ffprobeStreams(t, index); !contains(codecs, "video/av1") || !contains(codecs, "audio/opus") {
		t.Fatalf("ffprobe found %v, want video/av1 and audio/opus", codecs)
	}
}
