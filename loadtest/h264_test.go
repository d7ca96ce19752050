package loadtest

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

type packetLog struct{ pkts []rtp.Packet }

func (l *packetLog) WriteRTP(p *rtp.Packet) error {
	c := *p
	c.Payload = append([]byte(nil), p.Payload...)
	l.pkts = append(l.pkts, c)
	return nil
}

// The synthetic H.264 source writes access units a viewer reads back: a
// keyframe starts with an SPS, every frame carries its send time once, the
// first packet alone begins the access unit, the last has the marker, and
// fragments add up to the slice.
func TestH264Source_FramesReadBack(t *testing.T) {
	src := newH264Source(2_500_000, 30, 2*time.Second)
	for _, key := range []bool{true, false, false} {
		var log packetLog
		sentAt := time.Now().UnixNano()
		n, err := src.writeFrame(&log, key, sentAt)
		if err != nil || n != len(log.pkts) || n < 2 {
			t.Fatalf("writeFrame = %d, %v with %d packets", n, err, len(log.pkts))
		}
		first := parseH264(log.pkts[0].Payload)
		if first.Keyframe != key {
			t.Fatalf("key %v: first packet says keyframe %v", key, first.Keyframe)
		}
		var stamps int
		ts := log.pkts[0].Timestamp
		for i, p := range log.pkts {
			info := parseH264(p.Payload)
			if info.SentAt != 0 {
				stamps++
				if info.SentAt != sentAt {
					t.Fatalf("packet %d: sent at %d, want %d", i, info.SentAt, sentAt)
				}
			}
			if info.Start != (i == 0) {
				t.Fatalf("packet %d of %d: start %v (only the first begins the access unit)", i, n, info.Start)
			}
			if p.Marker != (i == len(log.pkts)-1) || p.Timestamp != ts || len(p.Payload) > maxRTPPayload {
				t.Fatalf("packet %d of %d: marker %v, timestamp %d (want %d), %d bytes", i, n, p.Marker, p.Timestamp, ts, len(p.Payload))
			}
		}
		if stamps != 1 {
			t.Fatalf("%d packets carry the send time, want 1", stamps)
		}
	}
}

func TestParseH264_Catalogue(t *testing.T) {
	slice := append([]byte{0x65, 0x88}, vp8Magic[:]...)
	slice = append(slice, 0, 0, 0, 0, 0, 0, 0, 42)
	for _, tc := range []struct {
		name    string
		payload []byte
		key     bool
		sentAt  int64
	}{
		{"empty", nil, false, 0},
		{"single IDR slice with a stamp", slice, true, 42},
		{"non-IDR without magic", []byte{0x41, 0x88, 1, 2, 3}, false, 0},
		{"STAP-A with SPS and PPS", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce}, true, 0},
		{"STAP-A with a length past its end", []byte{0x78, 0, 9, 0x67}, false, 0},
		{"FU-A start of an IDR", append([]byte{0x7c, 0x85}, slice[1:]...), true, 42},
		{"FU-A middle", append([]byte{0x7c, 0x05}, slice[1:]...), false, 0},
		{"FU-A without its header", []byte{0x7c}, false, 0},
	} {
		got := parseH264(tc.payload)
		if got.Keyframe != tc.key || got.SentAt != tc.sentAt {
			t.Errorf("%s: %+v, want keyframe %v sent at %d", tc.name, got, tc.key, tc.sentAt)
		}
	}
}

func FuzzParseH264(f *testing.F) {
	f.Add([]byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce})
	f.Add([]byte{0x7c, 0x85, 0x88, 'h', 'a', 'l', 'o', 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) { _ = parseH264(b) })
}
