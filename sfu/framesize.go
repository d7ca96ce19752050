package sfu

// The picture size a keyframe announces, used to rank simulcast layers
// (simulcast.go): VP8 keyframes carry it in their frame header, H.264 in
// the sequence parameter set sent with each IDR. Other codecs rank by
// bitrate and RID.

// frameSize returns the width and height a keyframe packet announces, or
// ok false when it does not (not a keyframe start, another codec, a
// truncated or malformed header). payload is outside input: every read is
// bounded.
func frameSize(mime string, payload []byte) (w, h int, ok bool) {
	switch mime {
	case "video/vp8":
		return vp8FrameSize(payload)
	case "video/h264":
		return h264FrameSize(payload)
	}
	return 0, 0, false
}

// vp8FrameSize reads a keyframe's frame header (RFC 6386 section 9.1)
// after the payload descriptor: frame tag (3 bytes), start code 9d 01 2a,
// then 14-bit width and height.
func vp8FrameSize(p []byte) (int, int, bool) {
	i, ok := vp8HeaderStart(p)
	if !ok || len(p) < i+10 || p[i]&0x01 != 0 {
		return 0, 0, false
	}
	if p[i+3] != 0x9d || p[i+4] != 0x01 || p[i+5] != 0x2a {
		return 0, 0, false
	}
	w := int(p[i+6]) | int(p[i+7]&0x3f)<<8
	h := int(p[i+8]) | int(p[i+9]&0x3f)<<8
	return w, h, w > 0 && h > 0
}

// h264FrameSize finds an SPS (a single NAL unit or inside a STAP-A) and
// reads its size.
func h264FrameSize(p []byte) (int, int, bool) {
	if len(p) < 1 {
		return 0, 0, false
	}
	switch p[0] & 0x1f {
	case h264SPS:
		return spsSize(p[1:])
	case h264STAPA:
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if size == 0 || i+2+size > len(p) {
				return 0, 0, false
			}
			if p[i+2]&0x1f == h264SPS {
				return spsSize(p[i+3 : i+2+size])
			}
			i += 2 + size
		}
	}
	return 0, 0, false
}

// bitReader reads an H.264 RBSP: emulation prevention bytes (00 00 03)
// are skipped; reading past the end sets err.
type bitReader struct {
	b     []byte
	pos   int // bit position
	zeros int // zero bytes in a row before the current byte
	err   bool
}

func (r *bitReader) bit() uint {
	byteAt := r.pos / 8
	if byteAt >= len(r.b) {
		r.err = true
		return 0
	}
	if r.pos%8 == 0 && byteAt > 1 && r.b[byteAt] == 3 && r.b[byteAt-1] == 0 && r.b[byteAt-2] == 0 {
		r.pos += 8 // emulation prevention byte
		return r.bit()
	}
	v := uint(r.b[byteAt]>>(7-uint(r.pos%8))) & 1
	r.pos++
	return v
}

func (r *bitReader) bits(n int) uint {
	var v uint
	for range n {
		v = v<<1 | r.bit()
	}
	return v
}

// ue reads an unsigned Exp-Golomb code (at most 31 leading zeros).
func (r *bitReader) ue() uint {
	zeros := 0
	for r.bit() == 0 {
		if r.err || zeros > 31 {
			r.err = true
			return 0
		}
		zeros++
	}
	return (1<<zeros - 1) + r.bits(zeros)
}

func (r *bitReader) se() int {
	v := r.ue()
	if v&1 == 1 {
		return int(v+1) / 2
	}
	return -int(v / 2)
}

// spsSize reads pic_width/height and the cropping of an SPS (ITU-T H.264
// section 7.3.2.1.1), starting after the NAL header.
func spsSize(b []byte) (int, int, bool) {
	r := &bitReader{b: b}
	profile := r.bits(8)
	r.bits(16) // constraint flags, level
	r.ue()     // seq_parameter_set_id
	chroma := uint(1)
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = r.ue()
		if chroma == 3 {
			r.bits(1) // separate_colour_plane_flag
		}
		r.ue()            // bit_depth_luma_minus8
		r.ue()            // bit_depth_chroma_minus8
		r.bits(1)         // qpprime_y_zero_transform_bypass_flag
		if r.bit() == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := range lists {
				if r.bit() == 0 {
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				last, next := 8, 8
				for range size {
					if next != 0 {
						next = (last + r.se() + 256) % 256
					}
					if next != 0 {
						last = next
					}
					if r.err {
						return 0, 0, false
					}
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue()
	case 1:
		r.bits(1)
		r.se()
		r.se()
		n := r.ue()
		if n > 255 {
			return 0, 0, false
		}
		for range n {
			r.se()
		}
	}
	r.ue()    // max_num_ref_frames
	r.bits(1) // gaps_in_frame_num_value_allowed_flag
	wmbs := r.ue() + 1
	hmaps := r.ue() + 1
	frameMbsOnly := r.bit()
	if frameMbsOnly == 0 {
		r.bits(1) // mb_adaptive_frame_field_flag
	}
	r.bits(1) // direct_8x8_inference_flag
	var cl, cr, ct, cb uint
	if r.bit() == 1 { // frame_cropping_flag
		cl, cr, ct, cb = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err || wmbs > 1024 || hmaps > 1024 {
		return 0, 0, false
	}
	w := int(wmbs * 16)
	h := int(hmaps * 16 * (2 - frameMbsOnly))
	cx, cy := 1, 2-int(frameMbsOnly)
	if chroma == 1 {
		cx, cy = 2, 2*(2-int(frameMbsOnly))
	} else if chroma == 2 {
		cx = 2
	}
	w -= cx * int(cl+cr)
	h -= cy * int(ct+cb)
	return w, h, w > 0 && h > 0
}
