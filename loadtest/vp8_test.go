package loadtest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// capture is an rtpWriter that keeps copies of the packets written.
type capture struct{ pkts []rtp.Packet }

func (c *capture) WriteRTP(p *rtp.Packet) error {
	cp := *p
	cp.Payload = bytes.Clone(p.Payload)
	c.pkts = append(c.pkts, cp)
	return nil
}

func TestVP8Source_FramesRoundTripThroughParser(t *testing.T) {
	const bitrate, fps = 2_500_000, 30
	src := newVP8Source(bitrate, fps)
	for _, key := range []bool{true, false, false, true} {
		sentAt := time.Now().UnixNano()
		c := &capture{}
		n, err := src.writeFrame(c, key, sentAt)
		if err != nil || n != len(c.pkts) {
			t.Fatalf("writeFrame = %d, %v; captured %d", n, err, len(c.pkts))
		}
		wantSize := bitrate / 8 / fps
		if key {
			wantSize *= 4
		}
		var frame []byte
		for i, p := range c.pkts {
			if len(p.Payload) > maxRTPPayload {
				t.Fatalf("packet %d payload %d bytes > %d", i, len(p.Payload), maxRTPPayload)
			}
			if p.Marker != (i == len(c.pkts)-1) {
				t.Fatalf("packet %d of %d: marker %v", i, len(c.pkts), p.Marker)
			}
			if i > 0 && p.SequenceNumber != c.pkts[i-1].SequenceNumber+1 {
				t.Fatalf("packet %d: sequence %d after %d", i, p.SequenceNumber, c.pkts[i-1].SequenceNumber)
			}
			if p.Timestamp != c.pkts[0].Timestamp {
				t.Fatalf("packet %d: timestamp differs within a frame", i)
			}
			info, err := ParseVP8(p.Payload)
			if err != nil {
				t.Fatalf("packet %d: ParseVP8: %v", i, err)
			}
			if info.FrameStart != (i == 0) || !info.HasPictureID || info.PictureID != mustPictureID(t, c.pkts[0].Payload) {
				t.Fatalf("packet %d: descriptor %+v", i, info)
			}
			if i == 0 {
				if info.Keyframe != key || info.SentAt != sentAt {
					t.Fatalf("frame header %+v, want keyframe %v sentAt %d", info, key, sentAt)
				}
				if key && (info.Width != VP8Width || info.Height != VP8Height) {
					t.Fatalf("keyframe size %dx%d", info.Width, info.Height)
				}
			}
			frame = append(frame, p.Payload[info.HeaderLen:]...)
		}
		if len(frame) != wantSize {
			t.Fatalf("frame of %d bytes, want %d", len(frame), wantSize)
		}
		// The first-partition size in the frame tag covers the rest.
		tag := uint32(frame[0]) | uint32(frame[1])<<8 | uint32(frame[2])<<16
		hdr := 3
		if key {
			hdr = 10
		}
		if got := int(tag >> 5); got != len(frame)-hdr {
			t.Fatalf("first partition size %d, want %d", got, len(frame)-hdr)
		}
		if tag&0x10 == 0 {
			t.Fatal("show_frame is not set")
		}
	}
}

func mustPictureID(t *testing.T, payload []byte) uint16 {
	t.Helper()
	info, err := ParseVP8(payload)
	if err != nil {
		t.Fatal(err)
	}
	return info.PictureID
}

func TestVP8Source_PictureIDAndTimestampAdvancePerFrame(t *testing.T) {
	src := newVP8Source(500_000, 25)
	var ids []uint16
	var ts []uint32
	for range 3 {
		c := &capture{}
		if _, err := src.writeFrame(c, false, 1); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, mustPictureID(t, c.pkts[0].Payload))
		ts = append(ts, c.pkts[0].Timestamp)
	}
	for i := 1; i < 3; i++ {
		if ids[i] != (ids[i-1]+1)&0x7fff {
			t.Fatalf("picture ids %v", ids)
		}
		if ts[i]-ts[i-1] != 90000/25 {
			t.Fatalf("timestamps %v", ts)
		}
	}
}

func TestVP8Source_TinyBitrateStillCarriesHeader(t *testing.T) {
	src := newVP8Source(100, 30) // 0 bytes per frame: clamped to the header
	c := &capture{}
	if _, err := src.writeFrame(c, false, 42); err != nil {
		t.Fatal(err)
	}
	info, err := ParseVP8(c.pkts[0].Payload)
	if err != nil || info.SentAt != 42 || len(c.pkts) != 1 {
		t.Fatalf("info %+v err %v packets %d", info, err, len(c.pkts))
	}
}

func TestParseVP8_Descriptors(t *testing.T) {
	keyHeader := []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01} // keyframe 640x480
	interHeader := []byte{0x11, 0x02, 0x00}
	tests := []struct {
		name    string
		payload []byte
		want    VP8Info
		err     error
	}{
		{name: "empty", payload: nil, err: ErrVP8Short},
		{name: "minimal start keyframe", payload: append([]byte{0x10}, keyHeader...),
			want: VP8Info{Start: true, HeaderLen: 1, FrameStart: true, Keyframe: true, Width: 640, Height: 480}},
		{name: "continuation", payload: []byte{0x00, 0xaa},
			want: VP8Info{HeaderLen: 1}},
		{name: "start of partition 1 is not a frame start", payload: []byte{0x11, 0xaa},
			want: VP8Info{Start: true, PartitionID: 1, HeaderLen: 1}},
		{name: "7-bit picture id", payload: append([]byte{0x90, 0x80, 0x05}, interHeader...),
			want: VP8Info{Start: true, HasPictureID: true, PictureID: 5, HeaderLen: 3, FrameStart: true}},
		{name: "15-bit picture id", payload: append([]byte{0x90, 0x80, 0x81, 0x23}, interHeader...),
			want: VP8Info{Start: true, HasPictureID: true, PictureID: 0x123, HeaderLen: 4, FrameStart: true}},
		{name: "all extensions", payload: append([]byte{0x90, 0xf0, 0x81, 0x23, 0x07, 0x40}, interHeader...),
			want: VP8Info{Start: true, HasPictureID: true, PictureID: 0x123, HeaderLen: 6, FrameStart: true}},
		{name: "L and K without I", payload: append([]byte{0x90, 0x50, 0x07, 0x40}, interHeader...),
			want: VP8Info{Start: true, HeaderLen: 4, FrameStart: true}},
		{name: "X without extension byte", payload: []byte{0x90}, err: ErrVP8Short},
		{name: "15-bit picture id cut", payload: []byte{0x90, 0x80, 0x81}, err: ErrVP8Short},
		{name: "descriptor only", payload: []byte{0x90, 0x80, 0x05}, err: errVP8EmptyPartition},
		{name: "frame tag cut", payload: []byte{0x10, 0x10, 0x02}, err: ErrVP8Short},
		{name: "keyframe header cut", payload: []byte{0x10, 0x10, 0x02, 0x00, 0x9d}, err: ErrVP8Short},
		{name: "keyframe bad start code", payload: []byte{0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2b, 0, 0, 0, 0}, err: ErrVP8BadStartCode},
		{name: "no magic, no timestamp", payload: append(append([]byte{0x10}, interHeader...), make([]byte, 30)...),
			want: VP8Info{Start: true, HeaderLen: 1, FrameStart: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVP8(tc.payload)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.err == nil && got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseVP8_DoesNotAllocate(t *testing.T) {
	src := newVP8Source(2_500_000, 30)
	c := &capture{}
	if _, err := src.writeFrame(c, true, 7); err != nil {
		t.Fatal(err)
	}
	payload := c.pkts[0].Payload
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseVP8(payload); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseVP8 allocates %.1f times per call", allocs)
	}
}

// discard is an rtpWriter that drops packets.
type discard struct{}

func (discard) WriteRTP(*rtp.Packet) error { return nil }

func TestVP8Source_WriteFrameDoesNotAllocate(t *testing.T) {
	src := newVP8Source(2_500_000, 30)
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := src.writeFrame(discard{}, true, 1); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("writeFrame allocates %.1f times per frame", allocs)
	}
}

func BenchmarkParseVP8(b *testing.B) {
	src := newVP8Source(2_500_000, 30)
	c := &capture{}
	if _, err := src.writeFrame(c, true, 7); err != nil {
		b.Fatal(err)
	}
	payload := c.pkts[0].Payload
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ParseVP8(payload)
	}
}

func FuzzParseVP8(f *testing.F) {
	src := newVP8Source(64_000, 30)
	for _, key := range []bool{true, false} {
		c := &capture{}
		_, _ = src.writeFrame(c, key, time.Now().UnixNano())
		for _, p := range c.pkts {
			f.Add(p.Payload)
		}
	}
	f.Add([]byte{0x90, 0xf0, 0x81, 0x23, 0x07, 0x40, 0x10, 0x02, 0x00})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, payload []byte) {
		info, err := ParseVP8(payload)
		if err != nil {
			return
		}
		if info.HeaderLen < 1 || info.HeaderLen >= len(payload) {
			t.Fatalf("HeaderLen %d outside payload of %d", info.HeaderLen, len(payload))
		}
		if info.FrameStart != (info.Start && info.PartitionID == 0) {
			t.Fatalf("FrameStart %v with S=%v PID=%d", info.FrameStart, info.Start, info.PartitionID)
		}
		if !info.FrameStart && (info.Keyframe || info.SentAt != 0) {
			t.Fatalf("frame header fields on a non-start packet: %+v", info)
		}
	})
}
