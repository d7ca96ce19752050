package loadtest

import (
	"encoding/binary"
	"errors"
)

// Layout of a synthetic VP8 frame (the VP8 bitstream, after the RTP payload
// descriptor). See the package documentation.
const (
	// VP8Width and VP8Height are the dimensions written in keyframe headers.
	VP8Width  = 1280
	VP8Height = 720
	// VP8MagicOffset is the byte offset, from the start of the VP8 frame, of
	// the 4-byte magic "halo" that marks a frame made by this package.
	VP8MagicOffset = 10
	// VP8TimestampOffset is the byte offset, from the start of the VP8 frame,
	// of the send time: 8 bytes, big-endian, Unix nanoseconds.
	VP8TimestampOffset = 14
	// vp8MinFrame is the smallest synthetic frame: header, magic, timestamp.
	vp8MinFrame = VP8TimestampOffset + 8
	// maxRTPPayload is the largest RTP payload the publisher writes.
	maxRTPPayload = 1200
	// vp8DescriptorLen is the size of the descriptor the publisher writes:
	// X=1, I=1 with a 15-bit picture id.
	vp8DescriptorLen = 4
)

// vp8Magic marks synthetic frames, so that frames from another source (a
// browser) are not mistaken for carrying a timestamp.
var vp8Magic = [4]byte{'h', 'a', 'l', 'o'}

// Errors returned by ParseVP8.
var (
	ErrVP8Short          = errors.New("loadtest: vp8 payload too short")
	ErrVP8BadStartCode   = errors.New("loadtest: vp8 keyframe without start code")
	errVP8EmptyPartition = errors.New("loadtest: vp8 packet without payload after descriptor")
)

// VP8Info is what ParseVP8 learns from one RTP payload.
type VP8Info struct {
	// Descriptor (RFC 7741 section 4.2).
	Start        bool   // S: first packet of a partition
	PartitionID  uint8  // PID
	HasPictureID bool   // I
	PictureID    uint16 // 7 or 15 bits
	HeaderLen    int    // descriptor length: the VP8 data starts here

	// Frame header, only when FrameStart.
	FrameStart bool // S=1 and PID=0: this packet starts a frame
	Keyframe   bool // frame tag bit 0 is 0
	Width      uint16
	Height     uint16
	// SentAt is the send time embedded by a Publisher of this package, in
	// Unix nanoseconds, or 0 when the frame does not carry one.
	SentAt int64
}

// ParseVP8 parses the VP8 RTP payload descriptor of payload and, when the
// packet starts a frame, the VP8 frame header (keyframe flag, dimensions) and
// the synthetic send timestamp. It never panics and does not allocate; bytes
// from the network are fine.
func ParseVP8(payload []byte) (VP8Info, error) {
	var info VP8Info
	if len(payload) < 1 {
		return info, ErrVP8Short
	}
	b0 := payload[0]
	info.Start = b0&0x10 != 0
	info.PartitionID = b0 & 0x07
	n := 1
	if b0&0x80 != 0 { // X: extension byte
		if len(payload) < n+1 {
			return info, ErrVP8Short
		}
		x := payload[n]
		n++
		if x&0x80 != 0 { // I: picture id
			if len(payload) < n+1 {
				return info, ErrVP8Short
			}
			info.HasPictureID = true
			if payload[n]&0x80 != 0 { // M: 15 bits
				if len(payload) < n+2 {
					return info, ErrVP8Short
				}
				info.PictureID = uint16(payload[n]&0x7f)<<8 | uint16(payload[n+1])
				n += 2
			} else {
				info.PictureID = uint16(payload[n] & 0x7f)
				n++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			n++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
			n++
		}
	}
	if len(payload) < n {
		return info, ErrVP8Short
	}
	if len(payload) == n {
		return info, errVP8EmptyPartition
	}
	info.HeaderLen = n
	if !info.Start || info.PartitionID != 0 {
		return info, nil
	}
	info.FrameStart = true
	return info, parseVP8Frame(payload[n:], &info)
}

// parseVP8Frame reads the VP8 frame header at the start of frame.
func parseVP8Frame(frame []byte, info *VP8Info) error {
	if len(frame) < 3 {
		return ErrVP8Short
	}
	info.Keyframe = frame[0]&0x01 == 0
	if info.Keyframe {
		if len(frame) < 10 {
			return ErrVP8Short
		}
		if frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
			return ErrVP8BadStartCode
		}
		info.Width = binary.LittleEndian.Uint16(frame[6:8]) & 0x3fff
		info.Height = binary.LittleEndian.Uint16(frame[8:10]) & 0x3fff
	}
	if len(frame) >= vp8MinFrame && [4]byte(frame[VP8MagicOffset:VP8TimestampOffset]) == vp8Magic {
		info.SentAt = int64(binary.BigEndian.Uint64(frame[VP8TimestampOffset:vp8MinFrame]))
	}
	return nil
}

// putVP8FrameHeader writes the synthetic header into frame (len(frame) >=
// vp8MinFrame): frame tag, keyframe start code and size, magic, timestamp.
// The bytes after the header are left as they are (filler).
func putVP8FrameHeader(frame []byte, key bool, sentAt int64) {
	var tag uint32 = 1 << 4 // version 0, show_frame 1
	hdr := 3
	if !key {
		tag |= 1
	} else {
		hdr = 10
	}
	firstPart := uint32(len(frame) - hdr)
	if firstPart > 0x7ffff {
		firstPart = 0x7ffff
	}
	tag |= firstPart << 5
	frame[0] = byte(tag)
	frame[1] = byte(tag >> 8)
	frame[2] = byte(tag >> 16)
	if key {
		frame[3], frame[4], frame[5] = 0x9d, 0x01, 0x2a
		binary.LittleEndian.PutUint16(frame[6:8], VP8Width)
		binary.LittleEndian.PutUint16(frame[8:10], VP8Height)
	} else {
		clear(frame[3:VP8MagicOffset])
	}
	copy(frame[VP8MagicOffset:], vp8Magic[:])
	binary.BigEndian.PutUint64(frame[VP8TimestampOffset:], uint64(sentAt))
}

// putVP8Descriptor writes the 4-byte descriptor the publisher uses: X=1,
// S as given, PID=0, I=1 with a 15-bit picture id.
func putVP8Descriptor(dst []byte, start bool, pictureID uint16) {
	dst[0] = 0x80
	if start {
		dst[0] |= 0x10
	}
	dst[1] = 0x80
	dst[2] = 0x80 | byte(pictureID>>8)&0x7f
	dst[3] = byte(pictureID)
}
