package hls

import (
	"bytes"
	"testing"
)

// An AV1 temporal unit of one frame OBU split over two packets (the second
// continues the first's OBU: Y then Z) comes out as that OBU whole; after a
// loss nothing comes out until the next temporal unit.
func TestAV1Assembler_OBUAcrossPackets(t *testing.T) {
	var a av1Assembler
	// Aggregation header: Y (continued in the next packet), W=1 (one OBU
	// element, no length); the OBU's header: OBU_FRAME (6), no size field.
	if err := a.push([]byte{0x50, 0x30, 1, 2}); err != nil {
		t.Fatal(err)
	}
	// Z (continues the previous packet's OBU), W=1.
	if err := a.push([]byte{0x90, 3, 4}); err != nil {
		t.Fatal(err)
	}
	tu := a.take()
	if len(tu) != 1 || !bytes.Equal(tu[0], []byte{0x30, 1, 2, 3, 4}) {
		t.Fatalf("temporal unit %x", tu)
	}
	if err := a.push([]byte{0x50, 0x30, 1, 2}); err != nil {
		t.Fatal(err)
	}
	a.drop()
	if a.take() != nil {
		t.Fatal("a temporal unit with a lost packet was given to the muxer")
	}
}

// FuzzAV1Assembler: RTP payloads from a publisher never panic the AV1
// depacketizer, and a temporal unit it gives is within the size bound.
func FuzzAV1Assembler(f *testing.F) {
	f.Add([]byte{0x50, 0x30, 1, 2}, []byte{0x90, 3, 4})
	f.Add([]byte{0x00, 0x02, 0x30, 1}, []byte{0xff})
	f.Fuzz(func(t *testing.T, p1, p2 []byte) {
		var a av1Assembler
		for _, p := range [][]byte{p1, p2} {
			if err := a.push(p); err != nil {
				a.drop()
			}
		}
		total := 0
		for _, o := range a.take() {
			total += len(o)
		}
		if total > maxAccessUnit {
			t.Fatal("temporal unit over the bound")
		}
	})
}
