package sfu

import "testing"

func TestFrameSize(t *testing.T) {
	vp8 := []byte{0x10, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02} // 1280x720
	if w, h, ok := frameSize("video/vp8", vp8); !ok || w != 1280 || h != 720 {
		t.Errorf("VP8 keyframe: %dx%d %v, want 1280x720", w, h, ok)
	}
	inter := append([]byte(nil), vp8...)
	inter[1] |= 0x01
	if _, _, ok := frameSize("video/vp8", inter); ok {
		t.Error("a VP8 inter frame announced a size")
	}
	// An SPS of a 1280x720 baseline stream (crop-free: 80x45 macroblocks).
	sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x06, 0xd0, 0xa1, 0x35}
	if w, h, ok := frameSize("video/h264", sps); !ok || w != 1280 || h != 720 {
		t.Errorf("H.264 SPS: %dx%d %v, want 1280x720", w, h, ok)
	}
	stap := append([]byte{0x78, 0x00, byte(len(sps))}, sps...)
	stap = append(stap, 0x00, 0x02, 0x68, 0xce)
	if w, h, ok := frameSize("video/h264", stap); !ok || w != 1280 || h != 720 {
		t.Errorf("H.264 STAP-A with the SPS: %dx%d %v, want 1280x720", w, h, ok)
	}
	for _, bad := range [][]byte{nil, {0x67}, {0x67, 0x64}, {0x78, 0x00, 0x40, 0x67}} {
		if _, _, ok := frameSize("video/h264", bad); ok {
			t.Errorf("truncated H.264 %x announced a size", bad)
		}
	}
}

func FuzzFrameSize(f *testing.F) {
	f.Add("video/vp8", []byte{0x10, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02})
	f.Add("video/h264", []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x06, 0xd0, 0xa1, 0x35})
	f.Add("video/h264", []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10})
	f.Fuzz(func(t *testing.T, mime string, p []byte) {
		w, h, ok := frameSize(mime, p)
		if ok && (w <= 0 || h <= 0 || w > 1<<14 || h > 1<<15) {
			t.Fatalf("size %dx%d accepted", w, h)
		}
	})
}
