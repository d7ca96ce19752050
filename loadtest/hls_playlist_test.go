package loadtest

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// An LL-HLS media playlist as the node's muxer (gohlslib) writes it: one
// complete segment of five parts, a segment in progress with two, a
// preload hint.
const testMediaPlaylist = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.60000,CAN-SKIP-UNTIL=6.00000
#EXT-X-PART-INF:PART-TARGET=0.20000
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-MAP:URI="m1_video_init.mp4?exp=1&sig=ab"
#EXT-X-GAP
#EXTINF:1.00000,
gap.mp4
#EXT-X-PROGRAM-DATE-TIME:2026-12-08T01:00:01.000Z
#EXT-X-PART:DURATION=0.20000,URI="m1_video_part0.mp4",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI="m1_video_part1.mp4"
#EXT-X-PART:DURATION=0.20000,URI="m1_video_part2.mp4"
#EXT-X-PART:DURATION=0.20000,URI="m1_video_part3.mp4"
#EXT-X-PART:DURATION=0.20000,URI="m1_video_part4.mp4"
#EXTINF:1.00000,
m1_video_seg8.mp4
#EXT-X-PROGRAM-DATE-TIME:2026-12-08T01:00:02.000Z
#EXT-X-PART:DURATION=0.20000,URI="m1_video_part5.mp4",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.25000,URI="m1_video_part6.mp4"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="m1_video_part7.mp4"
`

func TestParseHLSMedia_PartsSegmentsAndTimes(t *testing.T) {
	m, err := parseHLSMedia(testMediaPlaylist)
	if err != nil {
		t.Fatal(err)
	}
	if m.TargetDuration != time.Second || m.PartTarget != 200*time.Millisecond || m.PartHoldBack != 600*time.Millisecond || !m.CanBlock {
		t.Fatalf("header: %+v", m)
	}
	if m.MediaSequence != 7 || m.Complete != 2 || m.Map != "m1_video_init.mp4?exp=1&sig=ab" || m.Preload != "m1_video_part7.mp4" || m.End {
		t.Fatalf("playlist: %+v", m)
	}
	if len(m.Parts) != 7 {
		t.Fatalf("%d parts, want 7: %+v", len(m.Parts), m.Parts)
	}
	p3 := m.Parts[3]
	want3 := time.Date(2026, 12, 8, 1, 0, 1, 600_000_000, time.UTC)
	if p3.MSN != 8 || p3.Index != 3 || p3.URI != "m1_video_part3.mp4" || !p3.Start.Equal(want3) {
		t.Fatalf("part 3: %+v (start want %v)", p3, want3)
	}
	p6 := m.Parts[6]
	if p6.MSN != 9 || p6.Index != 1 || p6.Duration != 250*time.Millisecond || !p6.Start.Equal(want3.Add(600*time.Millisecond)) {
		t.Fatalf("part 6: %+v", p6)
	}

	// The part after the last of a complete segment is the next segment's
	// first; after the live edge, the next part is asked for, blocking.
	if next, found, _, _ := m.nextAfter(8, 4); !found || next.MSN != 9 || next.Index != 0 {
		t.Fatalf("after 8/4: %+v %v", next, found)
	}
	if _, found, want, behind := m.nextAfter(9, 1); found || behind || want != [2]uint64{9, 2} {
		t.Fatalf("after the live edge: found %v behind %v want %v", found, behind, want)
	}
	if _, found, _, behind := m.nextAfter(5, 2); found || !behind {
		t.Fatalf("a part older than the playlist: found %v behind %v", found, behind)
	}
	if _, ok := m.find(9, 0); !ok {
		t.Fatal("find 9/0")
	}
}

func TestParseHLSMultivariant_VideoAndAudio(t *testing.T) {
	mv, err := parseHLSMultivariant(`#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE="AUDIO",GROUP-ID="audio",NAME="audio2",DEFAULT=YES,AUTOSELECT=YES,URI="audio2_stream.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1000000,CODECS="avc1.42c01f,opus",RESOLUTION=320x240,AUDIO="audio"
video1_stream.m3u8?exp=1&sig=ab
`)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Video != "video1_stream.m3u8?exp=1&sig=ab" || mv.Audio != "audio2_stream.m3u8" {
		t.Fatalf("%+v", mv)
	}
}

// Bad playlists are errors that say what is wrong, never a panic.
func TestParseHLS_BadInputIsAnError(t *testing.T) {
	for name, body := range map[string]string{
		"not a playlist":         "<html>",
		"bad target":             "#EXTM3U\n#EXT-X-TARGETDURATION:x\n",
		"negative part":          "#EXTM3U\n#EXT-X-PART:DURATION=-1,URI=\"a\"\n",
		"part without URI":       "#EXTM3U\n#EXT-X-PART:DURATION=0.2\n",
		"unterminated quote":     "#EXTM3U\n#EXT-X-MAP:URI=\"a\n",
		"segment without EXTINF": "#EXTM3U\nseg.mp4\n",
		"bad date":               "#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n",
		"huge":                   "#EXTM3U\n" + strings.Repeat("#", hlsMaxPlaylist),
	} {
		if _, err := parseHLSMedia(body); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := parseHLSMultivariant("#EXTM3U\n#EXT-X-VERSION:9\n"); err == nil {
		t.Error("a multivariant playlist without a variant: no error")
	}
}

// The send times of the load tester's synthetic H.264 frames are read back
// from an fMP4 part's mdat (AVCC: length-prefixed NAL units), past other
// boxes and NAL units, and a truncated file stops the walk.
func TestHLSSendTimes_FromMdat(t *testing.T) {
	slice := func(typ byte, sent int64) []byte {
		nal := make([]byte, 40)
		nal[0], nal[1] = typ, 0x88
		copy(nal[2:], vp8Magic[:])
		binary.BigEndian.PutUint64(nal[6:], uint64(sent))
		return nal
	}
	avcc := func(nals ...[]byte) []byte {
		var b []byte
		for _, n := range nals {
			b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
			b = append(b, n...)
		}
		return b
	}
	box := func(typ string, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
		return append(append(b, typ...), body...)
	}
	mdat := avcc(h264SPS, h264PPS, slice(0x65, 1000), slice(0x41, 2000), []byte{0x06, 1, 2})
	file := append(box("moof", make([]byte, 32)), box("mdat", mdat)...)
	var got []int64
	hlsSendTimes(file, func(s int64) { got = append(got, s) })
	if len(got) != 2 || got[0] != 1000 || got[1] != 2000 {
		t.Fatalf("send times %v, want [1000 2000]", got)
	}
	got = nil
	hlsSendTimes(file[:len(file)-20], func(s int64) { got = append(got, s) })
	if len(got) != 0 {
		t.Fatalf("a truncated mdat gave %v", got)
	}
}

func FuzzHLSMedia(f *testing.F) {
	f.Add(testMediaPlaylist)
	f.Add("#EXTM3U\n#EXT-X-PART:DURATION=1,URI=\"a\",GAP=YES\n#EXTINF:1,\nx\n")
	f.Fuzz(func(t *testing.T, body string) {
		m, err := parseHLSMedia(body)
		if err != nil {
			return
		}
		for _, p := range m.Parts {
			m.nextAfter(p.MSN, p.Index)
		}
		m.nextAfter(0, 0)
	})
}

func FuzzHLSMultivariant(f *testing.F) {
	f.Add("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,URI=\"a.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n")
	f.Fuzz(func(t *testing.T, body string) {
		mv, err := parseHLSMultivariant(body)
		if err == nil && mv.Video == "" {
			t.Fatal("no error and no video playlist")
		}
	})
}

func FuzzHLSSendTimes(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 'm', 'd', 'a', 't'})
	f.Add([]byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 2, 0x65, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		hlsSendTimes(b, func(int64) {})
	})
}
