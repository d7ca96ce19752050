package sfu

import (
	"strings"
	"testing"
)

func TestIsKeyframe(t *testing.T) {
	cases := []struct {
		name, mime string
		payload    []byte
		want       bool
	}{
		{"vp8 key, no extension", "video/VP8", []byte{0x10, 0x00, 0x00, 0x00}, true},
		{"vp8 delta", "video/VP8", []byte{0x10, 0x01, 0x00, 0x00}, false},
		{"vp8 not start", "video/VP8", []byte{0x00, 0x00}, false},
		{"vp8 key with 15-bit picture id", "video/VP8", []byte{0x90, 0x80, 0x81, 0x02, 0x00}, true},
		{"vp8 delta with 7-bit picture id and tl0", "video/VP8", []byte{0x90, 0xC0, 0x05, 0x01, 0x01}, false},
		{"vp8 truncated extension", "video/VP8", []byte{0x90, 0x80}, false},
		{"vp8 empty", "video/VP8", nil, false},
		{"h264 idr", "video/H264", []byte{0x65, 0x88}, true},
		{"h264 sps", "video/H264", []byte{0x67}, true},
		{"h264 non-idr", "video/H264", []byte{0x41}, false},
		{"h264 stap-a with sps", "video/H264", []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68}, true},
		{"h264 fu-a idr start", "video/H264", []byte{0x7c, 0x85}, true},
		{"h264 fu-a idr middle", "video/H264", []byte{0x7c, 0x05}, false},
		{"h264 stap-a truncated", "video/H264", []byte{0x78, 0xff}, false},
		{"vp9 key start", "video/VP9", []byte{0x08}, true},
		{"vp9 inter", "video/VP9", []byte{0x48}, false},
		{"vp9 key with layer indices, base layer", "video/VP9", []byte{0xA8, 0x05, 0x00}, true},
		{"vp9 key with layer indices, spatial layer 1", "video/VP9", []byte{0xA8, 0x05, 0x02}, false},
		{"vp9 truncated layer indices", "video/VP9", []byte{0xA8, 0x05}, false},
		{"av1 new coded video sequence (N)", "video/AV1", []byte{0x18, 0x0a}, true},
		{"av1 one OBU, sequence header", "video/AV1", []byte{0x10, 0x0a, 0x00}, true},
		{"av1 two OBUs, sequence header first", "video/AV1", []byte{0x20, 0x03, 0x08, 0x00, 0x00, 0x32}, true},
		{"av1 one OBU, frame", "video/AV1", []byte{0x10, 0x32, 0x00}, false},
		{"av1 continuation", "video/AV1", []byte{0x90, 0x0a}, false},
		{"av1 truncated length", "video/AV1", []byte{0x20, 0x80}, false},
		{"h265 idr", "video/H265", []byte{0x26, 0x01}, true},
		{"h265 cra", "video/H265", []byte{0x2a, 0x01}, true},
		{"h265 trail", "video/H265", []byte{0x02, 0x01}, false},
		{"h265 vps in aggregation packet", "video/H265", []byte{0x60, 0x01, 0x00, 0x02, 0x40, 0x01}, true},
		{"h265 fu start of idr", "video/H265", []byte{0x62, 0x01, 0x93}, true},
		{"h265 fu middle of idr", "video/H265", []byte{0x62, 0x01, 0x13}, false},
		{"opus", "audio/opus", []byte{0x10}, false},
		{"unknown codec", "video/x-mystery", []byte{0x10}, false},
	}
	for _, c := range cases {
		if got := isKeyframe(strings.ToLower(c.mime), c.payload); got != c.want {
			t.Errorf("%s: got %v want %v", c.name, got, c.want)
		}
	}
}

func FuzzIsKeyframe(f *testing.F) {
	f.Add([]byte{0x90, 0x80, 0x81, 0x02, 0x00})
	f.Add([]byte{0x78, 0x00, 0x02, 0x67, 0x42})
	f.Fuzz(func(t *testing.T, p []byte) {
		for _, m := range []string{"video/vp8", "video/h264", "video/vp9", "video/av1", "video/h265"} {
			_ = isKeyframe(m, p)
		}
	})
}

func TestPacketCache_ReturnsOnlyTheRequestedSequence(t *testing.T) {
	c := newPacketCache(256)
	buf := make([]byte, maxCachedPacket)
	c.put(10, []byte{1, 2, 3}, 0)
	if n := c.get(10, buf); n != 3 || buf[2] != 3 {
		t.Fatalf("get(10) = %d", n)
	}
	c.put(10+256, []byte{9}, 0)
	if n := c.get(10, buf); n != 0 {
		t.Fatal("overwritten packet still returned")
	}
	if n := c.get(11, buf); n != 0 {
		t.Fatal("never stored packet returned")
	}
	c.put(12, make([]byte, maxCachedPacket+1), 0)
	if n := c.get(12, buf); n != 0 {
		t.Fatal("oversize packet returned")
	}
}

// A late joiner whose first packet is an old retransmission (older than the
// cached keyframe) must not replay around the sequence space; it starts on
// the next packet, with the cached picture first.
func TestDownTrack_LateOldPacketDoesNotStartTheViewer(t *testing.T) {
	rig := newTestRig(t)
	feed := rig.feed
	feed(1000, true)
	feed(1001, false)
	d := rig.addViewer()
	feed(990, false) // a retransmission from before the keyframe
	if got := rig.sent(d); len(got) != 0 {
		t.Fatalf("sent %v for an old packet", got)
	}
	feed(1002, false)
	got := rig.sent(d)
	if len(got) != 3 || got[0] != 1000 || got[2] != 1002 {
		t.Fatalf("viewer got source packets %v, want the picture 1000..1002", got)
	}
}
