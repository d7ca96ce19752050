package hls

import (
	"bytes"
	"testing"
)

// A VP9 frame in three packets (descriptor: B on the first, E on the last)
// comes out whole; a frame that lost its first packet does not.
func TestVP9Assembler_FrameFromPackets(t *testing.T) {
	var a vp9Assembler
	// Descriptors: I (a 7-bit picture id follows) with B, alone, with E.
	parts := [][]byte{{0x88, 0x01, 1, 2}, {0x80, 0x01, 3, 4}, {0x84, 0x01, 5}}
	for _, p := range parts {
		if err := a.push(p); err != nil {
			t.Fatal(err)
		}
	}
	if f := a.take(); !bytes.Equal(f, []byte{1, 2, 3, 4, 5}) {
		t.Fatalf("frame %v", f)
	}
	if err := a.push(parts[1]); err == nil {
		t.Fatal("a frame's middle packet without its beginning was taken")
	}
	if a.take() != nil {
		t.Fatal("a frame without its beginning was given to the muxer")
	}
}

// FuzzVP9Assembler: RTP payloads from a publisher never panic the VP9
// depacketizer, and a frame it gives is within the size bound.
func FuzzVP9Assembler(f *testing.F) {
	f.Add([]byte{0x88, 0x01, 1}, []byte{0x84, 0x01, 2})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, []byte{})
	f.Fuzz(func(t *testing.T, p1, p2 []byte) {
		var a vp9Assembler
		for _, p := range [][]byte{p1, p2} {
			if err := a.push(p); err != nil {
				a.drop()
			}
		}
		if len(a.take()) > maxAccessUnit {
			t.Fatal("frame over the bound")
		}
	})
}
