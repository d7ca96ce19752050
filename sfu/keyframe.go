package sfu

// isKeyframeStart reports whether payload is the first RTP packet of a
// keyframe for the codec with the given MIME type (lower case, as
// Track.mime keeps it: the per-packet path must not allocate). Only the start matters: the
// forwarder records where the picture begins so a late joiner can be given
// everything from there on. Unknown codecs report false (viewers then wait for
// a keyframe requested from the publisher instead).
func isKeyframeStart(mime string, payload []byte) bool {
	switch mime {
	case "video/vp8":
		return vp8KeyframeStart(payload)
	case "video/h264":
		return h264KeyframeStart(payload)
	case "video/vp9":
		return vp9KeyframeStart(payload)
	}
	return false
}

// vp8KeyframeStart parses the VP8 payload descriptor (RFC 7741 section 4.2)
// and the first byte of the VP8 frame tag (RFC 6386 section 9.1).
func vp8KeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b0 := p[0]
	start, pid := b0&0x10 != 0, b0&0x07
	if !start || pid != 0 {
		return false
	}
	i := 1
	if b0&0x80 != 0 { // X: extension byte follows
		if len(p) < 2 {
			return false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(p) <= i {
				return false
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
	if len(p) <= i {
		return false
	}
	return p[i]&0x01 == 0 // P bit: 0 means keyframe
}

// h264KeyframeStart looks for an IDR slice or an SPS at the start of a NAL
// unit (single NAL, STAP-A aggregate, or the first fragment of an FU-A).
func h264KeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch nal := p[0] & 0x1f; nal {
	case 5, 7: // IDR slice, SPS
		return true
	case 24: // STAP-A: 16-bit size then NAL unit, repeated
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if i+2 >= len(p) || size == 0 {
				return false
			}
			if t := p[i+2] & 0x1f; t == 5 || t == 7 {
				return true
			}
			i += 2 + size
		}
	case 28: // FU-A
		if len(p) < 2 {
			return false
		}
		t := p[1] & 0x1f
		return p[1]&0x80 != 0 && (t == 5 || t == 7)
	}
	return false
}

// vp9KeyframeStart reads the VP9 payload descriptor (RFC 9628): a packet that
// begins a frame (B) which is not inter-predicted (P=0) starts a keyframe.
func vp9KeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	return p[0]&0x40 == 0 && p[0]&0x08 != 0 // P=0, B=1
}
