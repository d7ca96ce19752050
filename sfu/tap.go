package sfu

import (
	"fmt"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// RTPWriter takes a tap's packets. WriteRTP runs on the track's forwarder:
// it must not block nor keep payload after it returns.
type RTPWriter interface {
	WriteRTP(h *rtp.Header, payload []byte) (int, error)
}

// Tap is an in-process viewer of a track: a down-track bound to a writer
// instead of a peer connection. It gets what a WebRTC viewer gets (the
// cached picture first, then every live packet, re-anchored across a
// republish) with the forwarding code viewers use, so a muxer (LL-HLS)
// reads a track without a hook of its own on the packet path.
type Tap struct {
	d *DownTrack
}

// Tap starts a tap of t that writes to w. Close stops it.
func (t *Track) Tap(w RTPWriter) (*Tap, error) {
	src := t
	if t.group != nil {
		if l := t.group.pick(LayerHigh); l != nil {
			src = l
		}
	}
	d := newDownTrack(src)
	ctx := tapContext{codec: webrtc.RTPCodecParameters{RTPCodecCapability: t.codec, PayloadType: 96}, w: tapWriter{w}}
	if _, err := d.Bind(ctx); err != nil {
		return nil, fmt.Errorf("sfu: tap %s: %w", t.info.ID, err)
	}
	d.src.Load().RequestKeyframe()
	return &Tap{d: d}, nil
}

// Close stops the tap: its track no longer writes to it.
func (x *Tap) Close() { x.d.unbindSub() }

// tapWriter adapts an RTPWriter to Pion's TrackLocalWriter.
type tapWriter struct{ w RTPWriter }

func (t tapWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	return t.w.WriteRTP(h, payload)
}

func (t tapWriter) Write(b []byte) (int, error) {
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		return 0, err
	}
	return t.w.WriteRTP(&p.Header, p.Payload)
}

// tapContext is the binding a tap's down-track gets: one codec (the
// track's own), no header extensions, no RTCP.
type tapContext struct {
	codec webrtc.RTPCodecParameters
	w     tapWriter
}

func (c tapContext) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{c.codec}
}
func (tapContext) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (tapContext) SSRC() webrtc.SSRC                                      { return 1 }
func (tapContext) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (tapContext) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c tapContext) WriteStream() webrtc.TrackLocalWriter                 { return c.w }
func (tapContext) ID() string                                             { return "tap" }
func (tapContext) RTCPReader() interceptor.RTCPReader                     { return nil }

// Switch moves the tap to another track of the same codec (its
// broadcaster's republished track): sequence numbers and timestamps go on
// from where they were, starting on the new track's picture, as for a
// viewer (DownTrack.Switch).
func (x *Tap) Switch(to *Track) error { return x.d.Switch(to) }

// Track returns the track the tap reads now.
func (x *Tap) Track() *Track { return x.d.Track() }
