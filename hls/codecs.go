package hls

import (
	"net/http"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
)

// depacketizer turns one video track's RTP payloads, in order, into the
// pictures the muxer takes.
type depacketizer interface {
	// push adds one payload to the picture being assembled.
	push(payload []byte) error
	// drop discards the picture being assembled (a packet was lost).
	drop()
	// write gives the muxer the picture assembled, when whole, and starts
	// the next one.
	write(m *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64) error
}

// videoFor returns the muxer track and the depacketizer of a video codec
// (its MIME type), or why it cannot go into HLS.
func videoFor(mime string) (*gohlslib.Track, depacketizer, *Error) {
	t := &gohlslib.Track{ClockRate: 90000}
	switch strings.ToLower(mime) {
	case "video/h264":
		t.Codec = &codecs.H264{}
		return t, &naluAssembler{}, nil
	case "video/h265":
		t.Codec = &codecs.H265{}
		return t, &naluAssembler{h265: true}, nil
	case "video/vp9":
		t.Codec = &codecs.VP9{}
		return t, &vp9Assembler{}, nil
	case "video/av1":
		t.Codec = &codecs.AV1{}
		return t, &av1Assembler{}, nil
	case "video/vp8":
		return nil, nil, newError(http.StatusUnsupportedMediaType, CodeCodecUnsupported,
			"the broadcast is VP8, which HLS cannot carry without transcoding, and the node does not transcode: publish H.264 for HLS")
	default:
		return nil, nil, newError(http.StatusUnsupportedMediaType, CodeCodecUnsupported,
			"the broadcast is %s, which HLS cannot carry: publish H.264 for HLS", mime)
	}
}

func (a *naluAssembler) write(m *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64) error {
	au := a.take()
	switch {
	case au == nil:
		return nil
	case a.h265:
		return m.WriteH265(t, ntp, pts, au)
	default:
		return m.WriteH264(t, ntp, pts, au)
	}
}

func (a *vp9Assembler) write(m *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64) error {
	if f := a.take(); f != nil {
		return m.WriteVP9(t, ntp, pts, f)
	}
	return nil
}

func (a *av1Assembler) write(m *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64) error {
	if tu := a.take(); tu != nil {
		return m.WriteAV1(t, ntp, pts, tu)
	}
	return nil
}
