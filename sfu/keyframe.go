package sfu

// A keyframe is found per access unit (all the packets of one picture share
// an RTP timestamp): the picture a late joiner is given starts at the FIRST
// packet of the access unit in which any packet says "keyframe", not at the
// packet that says so. For H.264 that keeps the STAP-A with SPS/PPS and every
// slice of a multi-slice IDR; for AV1 the sequence header. See picture.go.

// keyframeCodec reports whether the forwarder can tell keyframes of the codec
// (lower-case MIME type) apart. Viewers of other codecs are started on a
// keyframe requested from the publisher (a PLI) instead of the cache.
func keyframeCodec(mime string) bool {
	switch mime {
	case "video/vp8", "video/vp9", "video/h264", "video/h265", "video/av1":
		return true
	}
	return false
}

// isKeyframe reports whether payload, one RTP packet of the codec with the
// given MIME type (lower case, as Track.mime keeps it: the per-packet path
// must not allocate), carries part of a keyframe that a decoder can start
// from. Parsing never reads beyond payload; garbage reports false.
func isKeyframe(mime string, payload []byte) bool {
	switch mime {
	case "video/vp8":
		return vp8Keyframe(payload)
	case "video/h264":
		return h264Keyframe(payload)
	case "video/vp9":
		return vp9Keyframe(payload)
	case "video/av1":
		return av1Keyframe(payload)
	case "video/h265":
		return h265Keyframe(payload)
	}
	return false
}

// vp8Keyframe parses the VP8 payload descriptor (RFC 7741 section 4.2) and
// the first byte of the VP8 frame tag (RFC 6386 section 9.1): only the first
// packet of partition 0 carries the frame tag.
func vp8Keyframe(p []byte) bool {
	i, ok := vp8HeaderStart(p)
	return ok && len(p) > i && p[i]&0x01 == 0 // P bit: 0 means keyframe
}

// vp8HeaderStart returns where the VP8 frame header begins in the first
// packet of partition 0 (after the payload descriptor); ok is false for
// any other packet.
func vp8HeaderStart(p []byte) (int, bool) {
	if len(p) < 1 {
		return 0, false
	}
	b0 := p[0]
	start, pid := b0&0x10 != 0, b0&0x07
	if !start || pid != 0 {
		return 0, false
	}
	i := 1
	if b0&0x80 != 0 { // X: extension byte follows
		if len(p) < 2 {
			return 0, false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(p) <= i {
				return 0, false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
			i++
		}
	}
	return i, len(p) > i
}

// H.264 NAL unit types (RFC 6184 section 5.2, ITU-T H.264 table 7-1).
const (
	h264IDR   = 5
	h264SPS   = 7
	h264STAPA = 24
	h264FUA   = 28
)

// h264Keyframe looks for an IDR slice or an SPS: a single NAL unit, any NAL
// unit of a STAP-A aggregate, or the first fragment of an FU-A.
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	isKey := func(t byte) bool { return t == h264IDR || t == h264SPS }
	switch nal := p[0] & 0x1f; nal {
	case h264STAPA: // 16-bit size, then the NAL unit, repeated
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if size == 0 {
				return false
			}
			if isKey(p[i+2] & 0x1f) {
				return true
			}
			i += 2 + size
		}
		return false
	case h264FUA:
		return len(p) >= 2 && p[1]&0x80 != 0 && isKey(p[1]&0x1f)
	default:
		return isKey(nal)
	}
}

// vp9Keyframe reads the VP9 payload descriptor (RFC 9628 section 4.2): a
// packet that begins a frame (B) that is not inter-predicted (P=0), of the
// base spatial layer when layer indices are present.
func vp9Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	const (
		flagI, flagP, flagL, flagB = 0x80, 0x40, 0x20, 0x08
	)
	if b0&flagP != 0 || b0&flagB == 0 {
		return false
	}
	if b0&flagL == 0 {
		return true
	}
	i := 1
	if b0&flagI != 0 { // picture id, 7 or 15 bits
		if len(p) <= i {
			return false
		}
		if p[i]&0x80 != 0 {
			i += 2
		} else {
			i++
		}
	}
	if len(p) <= i {
		return false
	}
	return (p[i]>>1)&0x07 == 0 // SID of the layer indices byte
}

// AV1 OBU types (AV1 bitstream section 6.2.2).
const av1OBUSequenceHeader = 1

// av1Keyframe reads the AV1 aggregation header (AV1 RTP payload section
// 4.4): N marks the first packet of a coded video sequence, which starts
// with a keyframe; otherwise a packet whose first OBU element begins (Z=0)
// with a sequence header carries the start of a keyframe too (encoders send
// one before every keyframe).
func av1Keyframe(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	agg := p[0]
	if agg&0x08 != 0 { // N
		return true
	}
	if agg&0x80 != 0 { // Z: the first element continues an OBU
		return false
	}
	i := 1
	if w := (agg >> 4) & 0x03; w != 1 { // every element but a lone one has a length
		_, n := leb128(p[i:])
		if n == 0 {
			return false
		}
		i += n
	}
	if len(p) <= i {
		return false
	}
	return (p[i]>>3)&0x0f == av1OBUSequenceHeader
}

// leb128 decodes an unsigned LEB128 value (at most 8 bytes) and returns it
// and its length, or a length of 0 when p holds no complete value.
func leb128(p []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(p) && i < 8; i++ {
		v |= uint64(p[i]&0x7f) << (7 * i)
		if p[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

// H.265 NAL unit types (RFC 7798, ITU-T H.265 table 7-1).
const (
	h265IRAPFirst, h265IRAPLast = 16, 23 // BLA, IDR, CRA and reserved IRAP
	h265VPS, h265SPS            = 32, 33
	h265AP, h265FU              = 48, 49
)

// h265Keyframe looks for an IRAP picture or a VPS/SPS: a single NAL unit,
// any unit of an aggregation packet (without DONL, as sprop-max-don-diff=0
// implies), or the first fragment of an FU.
func h265Keyframe(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	isKey := func(t byte) bool {
		return (t >= h265IRAPFirst && t <= h265IRAPLast) || t == h265VPS || t == h265SPS
	}
	switch t := (p[0] >> 1) & 0x3f; t {
	case h265AP:
		for i := 2; i+3 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if size == 0 {
				return false
			}
			if isKey((p[i+2] >> 1) & 0x3f) {
				return true
			}
			i += 2 + size
		}
		return false
	case h265FU:
		return len(p) >= 3 && p[2]&0x80 != 0 && isKey(p[2]&0x3f)
	default:
		return isKey(t)
	}
}
