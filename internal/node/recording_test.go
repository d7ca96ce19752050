package node

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/auth"
)

// recordingNode starts a node recording into s3.
func recordingNode(t *testing.T, s3 *testutil.S3, mutate func(*config.Config)) *testNode {
	t.Helper()
	spool := t.TempDir()
	return startNode(t, func(c *config.Config) {
		c.Recording.Enabled = true
		c.Recording.S3 = config.RecordingS3Config{Endpoint: s3.Endpoint(), Bucket: s3.Bucket, Region: testutil.S3Region,
			AccessKey: testutil.S3AccessKey, SecretKey: testutil.S3SecretKey, PathStyle: true}
		c.Recording.SpoolDir = spool
		c.Recording.Retention = "7d"
		c.Recording.RetryMax = time.Second
		if mutate != nil {
			mutate(c)
		}
	})
}

// recordingAnswer is the body of the recording calls, as a client reads it.
type recordingAnswer struct {
	Recording struct {
		ID          string     `json:"id"`
		Room        string     `json:"room"`
		Node        string     `json:"node"`
		PlaylistURL string     `json:"playlist_url"`
		StartedAt   time.Time  `json:"started_at"`
		EndedAt     *time.Time `json:"ended_at"`
		Segments    int        `json:"segments"`
		Dropped     int        `json:"dropped"`
	} `json:"recording"`
}

// recordingCall calls POST or DELETE /api/v1/rooms/{room}/recording.
func recordingCall(t *testing.T, n *testNode, method, room, token string) (int, recordingAnswer, string) {
	t.Helper()
	status, b := apiCall(t, n, method, "/api/v1/rooms/"+room+"/recording", token, "")
	var a recordingAnswer
	if status < 300 {
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("%s recording: %v: %s", method, err, b)
		}
	}
	return status, a, string(b)
}

// storedStreams reads a recording's index.m3u8 from the store and returns
// the URLs of its media playlists.
func storedStreams(t *testing.T, index string) []string {
	t.Helper()
	status, _, body := get(t, index)
	if status != http.StatusOK {
		return nil
	}
	base := index[:strings.LastIndexByte(index, '/')+1]
	var out []string
	for _, u := range playlistURIs(body) {
		out = append(out, base+u)
	}
	return out
}

var segNumber = regexp.MustCompile(`_seg(\d+)\.mp4$`)

// storedSegments reads a media playlist from the store: its segment names
// and whether it has ended (VOD, EXT-X-ENDLIST).
func storedSegments(t *testing.T, url string) (segs []string, vod bool) {
	t.Helper()
	status, _, body := get(t, url)
	if status != http.StatusOK {
		return nil, false
	}
	for _, u := range playlistURIs(body) {
		if segNumber.MatchString(u) {
			segs = append(segs, u)
		}
	}
	return segs, strings.Contains(body, "#EXT-X-PLAYLIST-TYPE:VOD") && strings.Contains(body, "#EXT-X-ENDLIST")
}

// checkComplete checks that each stream of a finished recording lists
// consecutive segments, each one in the store, and returns how many.
func checkComplete(t *testing.T, index string) int {
	t.Helper()
	streams := storedStreams(t, index)
	if len(streams) != 2 {
		t.Fatalf("recording %s: %d media playlists, want video and audio", index, len(streams))
	}
	total := 0
	for _, s := range streams {
		segs, vod := storedSegments(t, s)
		if !vod {
			t.Errorf("%s is not a finished VOD playlist", s)
		}
		checkStoredInOrder(t, s, segs)
		total += len(segs)
	}
	return total
}

// extinf sums a media playlist's segment durations and finds the longest.
func extinf(t *testing.T, body string) (sum, longest time.Duration) {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		v, ok := strings.CutPrefix(l, "#EXTINF:")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), ","), 64)
		if err != nil {
			t.Fatalf("EXTINF %q: %v", v, err)
		}
		d := time.Duration(f * float64(time.Second))
		sum += d
		longest = max(longest, d)
	}
	return sum, longest
}

// ffprobeDuration is the duration ffprobe reads of url.
func ffprobeDuration(t *testing.T, url string) time.Duration {
	t.Helper()
	out, err := exec.Command(needFFmpeg(t, "ffprobe"), "-v", "error", "-rw_timeout", "20000000",
		"-show_entries", "format=duration", "-of", "default=nw=1:nk=1", url).Output()
	if err != nil {
		t.Fatalf("ffprobe duration of %s: %v", url, err)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q: %v", out, err)
	}
	return time.Duration(f * float64(time.Second))
}

// An H.264 + Opus broadcast (the load tester's publisher) recorded through
// the server API into a real S3 server: while it records, the store holds
// an EVENT playlist of what was uploaded; once stopped, ffprobe reads the
// VOD playlist from the store end to end as h264 + opus, for as long as
// the recording ran (within a segment), every segment in order.
func TestRecording_H264BroadcastReadByFFprobeFromTheStore(t *testing.T) {
	needFFmpeg(t, "ffprobe")
	s3 := testutil.StartS3(t)
	n := recordingNode(t, s3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	started := recordBroadcast(ctx, t, n, "rec", testBitrate)
	index := started.Recording.PlaylistURL
	if want := s3.URL("recordings/rec/" + started.Recording.ID + "/index.m3u8"); index != want {
		t.Fatalf("playlist_url %q, want %q", index, want)
	}
	// While it records: EVENT playlists listing what is uploaded.
	testutil.EventuallyWithin(t, 30*time.Second, "the store's EVENT playlists list 4 segments", func() bool {
		streams := storedStreams(t, index)
		if len(streams) != 2 {
			return false
		}
		segs, vod := storedSegments(t, streams[0])
		return !vod && len(segs) >= 4
	})
	time.Sleep(2 * time.Second)
	status, stopped, body := recordingCall(t, n, "DELETE", "rec", n.apiAdmin())
	if status != http.StatusOK || stopped.Recording.EndedAt == nil {
		t.Fatalf("DELETE recording: %d %s", status, body)
	}
	testutil.EventuallyWithin(t, 30*time.Second, "the store's playlists are VOD", func() bool {
		for _, s := range storedStreams(t, index) {
			if _, vod := storedSegments(t, s); !vod {
				return false
			}
		}
		return true
	})
	if got := checkComplete(t, index); got != stopped.Recording.Segments {
		t.Errorf("the store lists %d segments, the recording took %d", got, stopped.Recording.Segments)
	}
	codecs := ffprobeStreams(t, index)
	if !contains(codecs, "video/h264") || !contains(codecs, "audio/opus") {
		t.Fatalf("ffprobe of the recording: %v, want video/h264 and audio/opus", codecs)
	}
	// The recording holds from the start of the newest whole segment at
	// its start to the end of the last whole one at its stop: as long as
	// it ran, within a segment at each end.
	ran := stopped.Recording.EndedAt.Sub(stopped.Recording.StartedAt)
	var video string
	for _, u := range storedStreams(t, index) {
		if strings.Contains(u, "video") {
			video = u
		}
	}
	_, _, vbody := get(t, video)
	listed, longest := extinf(t, vbody)
	slack := longest + 500*time.Millisecond
	if listed < ran-slack || listed > ran+slack {
		t.Errorf("the VOD playlist lists %v of a recording that ran %v: not within a segment (%v):\n%s", listed, ran, longest, vbody)
	}
	if d := ffprobeDuration(t, index); d < listed-500*time.Millisecond || d > listed+500*time.Millisecond {
		t.Errorf("ffprobe reads %v of a recording whose playlist lists %v", d, listed)
	}
	if v, _ := sample(gather(t, n), "halo_recording_segments_dropped_total"); v != 0 {
		t.Errorf("halo_recording_segments_dropped_total = %v", v)
	}
}

// The store stopped (SIGSTOP) for 20 s in the middle of a recording: the
// node spools what it cannot upload (halo_recording_spool_bytes above 0,
// failed attempts counted) and, once the store is back, uploads it all:
// the finished recording lists every segment, none missing.
func TestRecording_StoreStoppedFor20sLosesNothing(t *testing.T) {
	s3 := testutil.StartS3(t)
	n := recordingNode(t, s3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	index := recordBroadcast(ctx, t, n, "out", testBitrate).Recording.PlaylistURL
	testutil.EventuallyWithin(t, 30*time.Second, "2 segments in the store", func() bool {
		streams := storedStreams(t, index)
		if len(streams) != 2 {
			return false
		}
		segs, _ := storedSegments(t, streams[0])
		return len(segs) >= 2
	})

	s3.Pause()
	paused := time.Now()
	testutil.EventuallyWithin(t, 15*time.Second, "the spool holds segments", func() bool {
		v, _ := sample(gather(t, n), "halo_recording_spool_bytes")
		return v > 0
	})
	time.Sleep(20*time.Second - time.Since(paused))
	s3.Resume()
	time.Sleep(2 * time.Second)

	status, stopped, body := recordingCall(t, n, "DELETE", "out", n.apiAdmin())
	if status != http.StatusOK {
		t.Fatalf("DELETE recording: %d %s", status, body)
	}
	if stopped.Recording.Dropped != 0 {
		t.Errorf("%d segments dropped", stopped.Recording.Dropped)
	}
	testutil.EventuallyWithin(t, 60*time.Second, "the spool is uploaded", func() bool {
		v, _ := sample(gather(t, n), "halo_recording_spool_bytes")
		for _, s := range storedStreams(t, index) {
			if _, vod := storedSegments(t, s); !vod {
				return false
			}
		}
		return v == 0
	})
	if got := checkComplete(t, index); got != stopped.Recording.Segments {
		t.Errorf("the store lists %d segments, the recording took %d", got, stopped.Recording.Segments)
	}
	// 20 s of a 1 s-segment broadcast, video and audio.
	if stopped.Recording.Segments < 40 {
		t.Errorf("%d segments over the outage, want at least 40", stopped.Recording.Segments)
	}
	fams := gather(t, n)
	if v, _ := sample(fams, "halo_recording_upload_failures_total"); v == 0 {
		t.Error("no failed upload counted while the store was stopped")
	}
	if v, _ := sample(fams, "halo_recording_segments_dropped_total"); v != 0 {
		t.Errorf("halo_recording_segments_dropped_total = %v", v)
	}
}

// The recording calls' refusals, each with its code: no token or a token
// without the grant, another room's moderator, a room with nothing
// published, a VP8 broadcast, a second start, a stop of no recording, and
// a node that does not record.
func TestRecording_APIRefusals(t *testing.T) {
	s3 := testutil.StartS3(t)
	n := recordingNode(t, s3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n.publisher(ctx, "vp8", loadtest.PublisherConfig{VideoBitrate: 300_000, Codec: loadtest.CodecVP8})
	waitTracks(t, n, "vp8", 2)
	moderator := func(room string) string {
		tok, err := n.signer.Sign(auth.Claims{Identity: "mod", Room: room, Grants: auth.Grants{Moderate: true}, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	code := func(body string) string {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &e)
		return e.Error.Code
	}
	for _, c := range []struct {
		name, method, room, token string
		status                    int
		code                      string
	}{
		{"no token", "POST", "vp8", "", http.StatusUnauthorized, "unauthorized"},
		{"a publisher's token", "POST", "vp8", n.token("vp8", "x", true, true), http.StatusForbidden, "forbidden"},
		{"another room's moderator", "POST", "vp8", moderator("other"), http.StatusForbidden, "forbidden"},
		{"nothing published", "POST", "empty", n.apiAdmin(), http.StatusNotFound, "not_found"},
		{"VP8", "POST", "vp8", moderator("vp8"), http.StatusUnprocessableEntity, "unsupported_codec"},
		{"stop without a recording", "DELETE", "vp8", n.apiAdmin(), http.StatusNotFound, "not_found"},
		{"bad room name", "POST", "a%20b", n.apiAdmin(), http.StatusBadRequest, "bad_request"},
		{"a room of dots", "POST", "...", n.apiAdmin(), http.StatusBadRequest, "bad_request"},
	} {
		status, _, body := recordingCall(t, n, c.method, c.room, c.token)
		if status != c.status || code(body) != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.code)
		}
	}

	// A second start of a recorded room: 409.
	n.publisher(ctx, "twice", loadtest.PublisherConfig{VideoBitrate: 300_000, Codec: loadtest.CodecH264, KeyframeInterval: time.Second})
	waitTracks(t, n, "twice", 2)
	if status, _, body := recordingCall(t, n, "POST", "twice", moderator("twice")); status != http.StatusCreated {
		t.Fatalf("POST recording: %d %s", status, body)
	}
	if status, _, body := recordingCall(t, n, "POST", "twice", n.apiAdmin()); status != http.StatusConflict || code(body) != "conflict" {
		t.Errorf("second start: %d %s, want 409 conflict", status, body)
	}

	// A node without recording.enabled: 501 recording_disabled.
	off := startNode(t, nil)
	if status, _, body := recordingCall(t, off, "POST", "vp8", off.apiAdmin()); status != http.StatusNotImplemented || code(body) != "recording_disabled" {
		t.Errorf("recording disabled: %d %s, want 501 recording_disabled", status, body)
	}
}

// A node that serves signed HLS URLs only (hls.signing_secret) records
// too: the recorder signs its own reads, and the store's playlists carry
// none of the muxer's query (exp, sig).
func TestRecording_WithSignedHLS(t *testing.T) {
	s3 := testutil.StartS3(t)
	n := recordingNode(t, s3, func(c *config.Config) { c.HLS.SigningSecret = hlsSecret })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	index := recordBroadcast(ctx, t, n, "signed", 600_000).Recording.PlaylistURL
	testutil.EventuallyWithin(t, 30*time.Second, "2 segments of each stream in the store", func() bool {
		streams := storedStreams(t, index)
		for _, s := range streams {
			if segs, _ := storedSegments(t, s); len(segs) < 2 {
				return false
			}
		}
		return len(streams) == 2
	})
	if status, _, _ := get(t, n.base+"/hls/signed/index.m3u8"); status != http.StatusForbidden {
		t.Errorf("an unsigned player request answers %d, want 403: the node must still refuse it", status)
	}
	_, _, idx := get(t, index)
	for _, s := range append(storedStreams(t, index), index) {
		_, _, b := get(t, s)
		if strings.Contains(b, "sig=") || strings.Contains(b, "exp=") {
			t.Errorf("%s keeps the muxer's signed query:\n%s", s, b)
		}
	}
	if !strings.Contains(idx, "video1_stream.m3u8") {
		t.Errorf("index:\n%s", idx)
	}
}

// recordBroadcast publishes an H.264 + Opus broadcast (keyframes every
// second) at bitrate in room, and starts recording it through the API.
func recordBroadcast(ctx context.Context, t *testing.T, n *testNode, room string, bitrate int) recordingAnswer {
	t.Helper()
	n.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: bitrate, Codec: loadtest.CodecH264, KeyframeInterval: time.Second})
	waitTracks(t, n, room, 2)
	status, started, body := recordingCall(t, n, "POST", room, n.apiAdmin())
	if status != http.StatusCreated {
		t.Fatalf("POST recording: %d %s", status, body)
	}
	return started
}

// checkStoredInOrder checks that the segments segs of the stored playlist
// at url are numbered one after another and that the store holds each.
func checkStoredInOrder(t *testing.T, url string, segs []string) {
	t.Helper()
	base := url[:strings.LastIndexByte(url, '/')+1]
	prev := -1
	for _, seg := range segs {
		n, _ := strconv.Atoi(segNumber.FindStringSubmatch(seg)[1])
		if prev >= 0 && n != prev+1 {
			t.Errorf("%s: segment %d follows %d: segments missing", url, n, prev)
		}
		prev = n
		if status, _, _ := get(t, base+seg); status != http.StatusOK {
			t.Errorf("%s lists %s, which the store answers %d", url, seg, status)
		}
	}
}
