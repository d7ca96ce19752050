package loadtest

import (
	"encoding/binary"
	"time"
)

// hlsSendTimes calls fn with the send time (Unix nanoseconds) of every
// synthetic H.264 frame of this package's publisher (see h264.go) in an
// fMP4 part or segment: it walks the file's top-level boxes and, in each
// mdat, the length-prefixed NAL units (AVCC) of its samples. Frames of any
// other encoder carry no send time and are skipped. It never panics on a
// malformed file; it stops where the file stops making sense.
func hlsSendTimes(b []byte, fn func(sentAt int64)) {
	for len(b) >= 8 {
		size := uint64(binary.BigEndian.Uint32(b))
		typ := string(b[4:8])
		hdr := uint64(8)
		switch size {
		case 0:
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return
		}
		if typ == "mdat" {
			hlsNALSendTimes(b[hdr:size], fn)
		}
		b = b[size:]
	}
}

// hlsNALSendTimes reads 4-byte length-prefixed NAL units.
func hlsNALSendTimes(b []byte, fn func(int64)) {
	for len(b) >= 4 {
		n := uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n > uint64(len(b)) {
			return
		}
		nal := b[:n]
		b = b[n:]
		if len(nal) < h264SliceHeader {
			continue
		}
		if t := nal[0] & 0x1f; (t == 1 || t == 5) && [4]byte(nal[2:6]) == vp8Magic {
			fn(int64(binary.BigEndian.Uint64(nal[6:14])))
		}
	}
}

// plausibleSendTime reports whether sentAt (Unix nanoseconds) is within an
// hour of now: the publisher and the viewer share a clock.
func plausibleSendTime(sentAt int64, now time.Time) bool {
	d := now.Sub(time.Unix(0, sentAt))
	return d > -time.Hour && d < time.Hour
}
