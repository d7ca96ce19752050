package hls

import (
	"bytes"
	"testing"
)

// An access unit sent as a STAP-A (SPS, PPS) and an IDR in FU-A fragments
// comes out as its three NAL units, whole.
func TestNALUAssembler_STAPAAndFUA(t *testing.T) {
	sps, pps := []byte{0x67, 0x42, 0xe0, 0x1f}, []byte{0x68, 0xce, 0x3c, 0x80}
	idr := append([]byte{0x65}, bytes.Repeat([]byte{0xaa}, 3000)...)
	var a naluAssembler
	stap := []byte{0x78, 0, byte(len(sps))}
	stap = append(stap, sps...)
	stap = append(stap, 0, byte(len(pps)))
	stap = append(stap, pps...)
	if err := a.push(stap); err != nil {
		t.Fatal(err)
	}
	body := idr[1:]
	for i := 0; i < len(body); i += 1000 {
		fu := []byte{0x7c, 0x05}
		if i == 0 {
			fu[1] |= 0x80
		}
		if i+1000 >= len(body) {
			fu[1] |= 0x40
		}
		if err := a.push(append(fu, body[i:min(i+1000, len(body))]...)); err != nil {
			t.Fatal(err)
		}
	}
	au := a.take()
	if len(au) != 3 || !bytes.Equal(au[0], sps) || !bytes.Equal(au[1], pps) || !bytes.Equal(au[2], idr) {
		t.Fatalf("got %d NAL units, want SPS, PPS and the whole IDR", len(au))
	}
	if a.take() != nil {
		t.Fatal("the next access unit is not empty")
	}
}

// A lost fragment drops its access unit; the next one comes out whole.
func TestNALUAssembler_LossDropsTheAccessUnit(t *testing.T) {
	var a naluAssembler
	if err := a.push([]byte{0x7c, 0x85, 1, 2}); err != nil {
		t.Fatal(err)
	}
	a.drop()
	if a.take() != nil {
		t.Fatal("an access unit with a lost packet was given to the muxer")
	}
	if err := a.push([]byte{0x7c, 0x45, 3}); err == nil {
		t.Fatal("an end fragment without its start was taken")
	}
	a.clear()
	if err := a.push([]byte{0x41, 9, 9}); err != nil {
		t.Fatal(err)
	}
	if au := a.take(); len(au) != 1 || !bytes.Equal(au[0], []byte{0x41, 9, 9}) {
		t.Fatalf("got %v", au)
	}
}

// H.265: an AP (VPS, SPS) and an IDR_W_RADL in FU fragments come out as
// their NAL units, the IDR's two-byte header rebuilt from the FU header.
func TestNALUAssembler_H265APAndFU(t *testing.T) {
	vps, sps := []byte{0x40, 0x01, 0x0c}, []byte{0x42, 0x01, 0x01, 0x60}
	idr := append([]byte{0x26, 0x01}, bytes.Repeat([]byte{0xbb}, 2500)...)
	a := naluAssembler{h265: true}
	ap := []byte{48 << 1, 0x01, 0, byte(len(vps))}
	ap = append(ap, vps...)
	ap = append(ap, 0, byte(len(sps)))
	ap = append(ap, sps...)
	if err := a.push(ap); err != nil {
		t.Fatal(err)
	}
	body := idr[2:]
	for i := 0; i < len(body); i += 1000 {
		fu := []byte{49 << 1, 0x01, 19} // FU of type 19 (IDR_W_RADL)
		if i == 0 {
			fu[2] |= 0x80
		}
		if i+1000 >= len(body) {
			fu[2] |= 0x40
		}
		if err := a.push(append(fu, body[i:min(i+1000, len(body))]...)); err != nil {
			t.Fatal(err)
		}
	}
	au := a.take()
	if len(au) != 3 || !bytes.Equal(au[0], vps) || !bytes.Equal(au[1], sps) || !bytes.Equal(au[2], idr) {
		t.Fatalf("got %d NAL units, want VPS, SPS and the whole IDR", len(au))
	}
}

// FuzzNALUAssembler: RTP payloads from a publisher never panic the H.264
// or H.265 depacketizer, and what it gives the muxer is made of non-empty NAL units
// within the size bound.
func FuzzNALUAssembler(f *testing.F) {
	f.Add([]byte{0x78, 0, 2, 0x67, 1, 0, 1, 0x68}, []byte{0x7c, 0x85, 1}, []byte{0x7c, 0x45, 2})
	f.Add([]byte{0x65, 1}, []byte{}, []byte{0x7c})
	f.Add([]byte{0x78, 0xff, 0xff}, []byte{0x1c, 0x40}, []byte{0x18, 0, 0})
	f.Add([]byte{0x61, 0x01, 0, 2, 0x40, 1}, []byte{0x62, 0x01, 0x93, 1}, []byte{0x62, 0x01, 0x53, 2})
	f.Fuzz(func(t *testing.T, p1, p2, p3 []byte) {
		// The first byte of p1 picks the codec: H.265 when odd.
		a := naluAssembler{h265: len(p1) > 0 && p1[0]&1 == 1}
		for _, p := range [][]byte{p1, p2, p3} {
			if err := a.push(p); err != nil {
				a.drop()
			}
		}
		total := 0
		for _, n := range a.take() {
			if len(n) == 0 {
				t.Fatal("empty NAL unit")
			}
			total += len(n)
		}
		if total > maxAccessUnit {
			t.Fatal("access unit over the bound")
		}
	})
}
