package record

import (
	"strings"
	"testing"
	"time"
)

// A multivariant playlist as the node's muxer writes it (signed URLs).
const testIndex = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS

#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio2",AUTOSELECT=YES,DEFAULT=YES,URI="audio2_stream.m3u8?exp=1&sig=ab"

#EXT-X-STREAM-INF:BANDWIDTH=1000,AVERAGE-BANDWIDTH=900,CODECS="avc1.42c01f,opus",RESOLUTION=320x240,FRAME-RATE=30.000,AUDIO="audio"
video1_stream.m3u8?exp=1&sig=ab
`

const testMedia = `#EXTM3U
#EXT-X-VERSION:10
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.50000,CAN-SKIP-UNTIL=6.00000
#EXT-X-PART-INF:PART-TARGET=0.20000
#EXT-X-MEDIA-SEQUENCE:5
#EXT-X-MAP:URI="3f2a_video1_init.mp4?exp=1&sig=ab"
#EXT-X-GAP
#EXTINF:1.00000,
gap.mp4
#EXTINF:1.03300,
3f2a_video1_seg6.mp4?exp=1&sig=ab
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="3f2a_video1_part30.mp4"
`

func TestParseMultivariant_StreamsWithoutQuery(t *testing.T) {
	mv, uris, err := parseMultivariant([]byte(testIndex))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(uris, " ") != "video1_stream.m3u8 audio2_stream.m3u8" {
		t.Fatalf("streams %q", uris)
	}
	b, err := renderIndex(mv)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "sig=") || !strings.Contains(string(b), "\nvideo1_stream.m3u8\n") || !strings.Contains(string(b), `URI="audio2_stream.m3u8"`) {
		t.Fatalf("the recording's index keeps the muxer's query or loses a stream:\n%s", b)
	}
}

func TestParseMultivariant_RefusesWhatIsNotOne(t *testing.T) {
	for name, in := range map[string]string{
		"media":      testMedia,
		"empty":      "",
		"not hls":    "hello",
		"path":       strings.Replace(testIndex, "video1_stream.m3u8?", "../x.m3u8?", 1),
		"huge":       "#EXTM3U\n" + strings.Repeat("#", maxPlaylistBytes),
		"no variant": "#EXTM3U\n#EXT-X-VERSION:9\n",
	} {
		if _, _, err := parseMultivariant([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRenderMedia_EventThenVOD(t *testing.T) {
	pl, err := parseMedia([]byte(testMedia))
	if err != nil {
		t.Fatal(err)
	}
	if pl.MediaSequence != 5 || len(pl.Segments) != 2 || !pl.Segments[0].Gap || objectName(pl.Segments[1].URI) != "video1_seg6.mp4" {
		t.Fatalf("parsed %+v", pl)
	}
	segs := []*segment{
		{name: "video1_seg6.mp4", duration: 1033 * time.Millisecond, state: segUploaded},
		{name: "video1_seg7.mp4", duration: 2500 * time.Millisecond, state: segDropped},
		{name: "video1_seg8.mp4", duration: time.Second, state: segUploaded},
		{name: "video1_seg9.mp4", duration: time.Second, state: segPending},
	}
	b, err := renderMedia("video1_init.mp4", segs, false)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"#EXT-X-PLAYLIST-TYPE:EVENT", `#EXT-X-MAP:URI="video1_init.mp4"`, "video1_seg6.mp4",
		"#EXT-X-DISCONTINUITY\n#EXTINF:1.00000,\nvideo1_seg8.mp4"} {
		if !strings.Contains(s, want) {
			t.Errorf("EVENT playlist lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "seg7") || strings.Contains(s, "seg9") || strings.Contains(s, "ENDLIST") {
		t.Errorf("EVENT playlist lists a dropped or pending segment, or ends:\n%s", s)
	}
	b, err = renderMedia("video1_init.mp4", segs, true)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, "#EXT-X-PLAYLIST-TYPE:VOD") || !strings.HasSuffix(s, "#EXT-X-ENDLIST\n") {
		t.Errorf("VOD playlist:\n%s", s)
	}
	if b, err := renderMedia("video1_init.mp4", nil, true); err != nil || !strings.Contains(string(b), "#EXT-X-ENDLIST") {
		t.Errorf("empty VOD playlist: %v\n%s", err, b)
	}
}

func TestObjectName_DropsTheMuxersPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"3f2a_video1_seg9.mp4?exp=1": "video1_seg9.mp4", "init.mp4": "init.mp4", "_x": "_x", "a_": "a_",
	} {
		if got := objectName(in); got != want {
			t.Errorf("objectName(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzPlaylists: whatever the muxer's playlists hold, reading them
// answers an error or names that are safe object names, never a panic.
func FuzzPlaylists(f *testing.F) {
	f.Add([]byte(testIndex))
	f.Add([]byte(testMedia))
	f.Add([]byte("#EXTM3U\n#EXT-X-MAP:URI=\"../../x\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, uris, err := parseMultivariant(b); err == nil {
			for _, u := range uris {
				if !safeName(u) {
					t.Fatalf("unsafe stream name %q", u)
				}
			}
		}
		if pl, err := parseMedia(b); err == nil {
			for _, s := range pl.Segments {
				_ = objectName(s.URI)
			}
		}
	})
}
