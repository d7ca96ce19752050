package sfu

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// errNoCodec is returned by Bind when the viewer did not accept the track's codec.
var errNoCodec = errors.New("sfu: viewer does not support the track's codec")

// binding is what Pion gives a down-track when the viewer's answer is applied.
type binding struct {
	ssrc   uint32
	pt     uint8
	writer webrtc.TrackLocalWriter
}

// DownTrack is one viewer's copy of a published track: our own
// webrtc.TrackLocal. It keeps its binding's SSRC and payload type, maps the
// source's sequence numbers and timestamps into its own space, starts a viewer
// on a keyframe (replayed from the shared cache when the current picture is
// still there), and answers the viewer's NACKs from the shared cache.
type DownTrack struct {
	track *Track
	codec webrtc.RTPCodecCapability
	bind  atomic.Pointer[binding]

	// Sequence and timestamp mapping: out = src + offset. Written by the
	// packet writer before started is set; read by the NACK handler after.
	// Until started, the viewer has been sent nothing and must start on a
	// keyframe.
	started   atomic.Bool
	seqOffset uint16
	tsOffset  uint32
	startSeq  uint16 // first source sequence number sent

	// Writer-owned (the track's reader or one fan-out worker per packet).
	fresh int // packets forwarded since start, up to freshWindow
	hdr   rtp.Header

	rtxMu sync.Mutex // guards the retransmission scratch
	rtx   scratch
}

func newDownTrack(t *Track) *DownTrack {
	return &DownTrack{track: t, codec: t.codec}
}

// Bind implements webrtc.TrackLocal: the viewer accepted the track.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, ok := pickCodec(d.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, errNoCodec
	}
	d.bind.Store(&binding{ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), writer: ctx.WriteStream()})
	d.track.addDown(d)
	return c, nil
}

// Unbind implements webrtc.TrackLocal: the viewer stopped the track, so the
// track stops writing to it.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.track.removeDown(d)
	return nil
}

// ID is the published track's id.
func (d *DownTrack) ID() string { return d.track.info.ID }

// RID is empty: a down-track is one layer.
func (d *DownTrack) RID() string { return "" }

// StreamID is the publisher's participant id, so a viewer keeps the
// publisher's audio and video in one synchronised stream.
func (d *DownTrack) StreamID() string { return d.track.info.StreamID }

// Kind is audio or video.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.track.info.Kind }

// Track returns the published track this down-track copies.
func (d *DownTrack) Track() *Track { return d.track }

// forward writes one source packet to the viewer and returns the bytes
// written (0 when the packet was not sent). A viewer that has received
// nothing yet starts on a keyframe: the packets since the latest keyframe are
// replayed from the cache first, so it gets a picture at once instead of at the
// broadcaster's next natural keyframe.
func (d *DownTrack) forward(h *rtp.Header, payload []byte, sc *scratch) int {
	b := d.bind.Load()
	if b == nil {
		return 0
	}
	if !d.started.Load() {
		t := d.track
		switch {
		case !t.isVideo():
			d.start(h)
		case t.kfValid && int16(h.SequenceNumber-t.kfSeq) < 0:
			return 0 // a late packet from before the picture: wait for a newer one
		case t.kfValid && t.kfSeq != h.SequenceNumber:
			switch d.replay(b, h.SequenceNumber, sc) {
			case replayNotReady:
				return 0
			case replayNoKeyframe:
				t.RequestKeyframe()
				return 0
			}
		case isKeyframeStart(t.mime, payload):
			d.start(h)
		default:
			t.RequestKeyframe()
			return 0
		}
		n := d.write(b, h, payload, &d.hdr)
		if n == 0 {
			d.started.Store(false) // SRTP is not up yet: start again with the next packet
		}
		return n
	}
	if d.fresh < freshWindow {
		// Early on, a late retransmission from the publisher can be older than
		// the viewer's first packet; it would only confuse the viewer.
		if int16(h.SequenceNumber-d.startSeq) < 0 {
			return 0
		}
		d.fresh++
	}
	return d.write(b, h, payload, &d.hdr)
}

// freshWindow is how many packets after its start a down-track checks for
// packets older than its first one (beyond it sequence numbers wrap).
const freshWindow = 4096

// Outcomes of replay.
const (
	replayStarted    = iota // the viewer has the picture since the keyframe
	replayNotReady          // Pion dropped the keyframe: DTLS is not up yet
	replayNoKeyframe        // the keyframe's first packet is gone from the cache
)

// replay sends the cached packets from the latest keyframe up to (not
// including) seq, starting the down-track at the keyframe.
func (d *DownTrack) replay(b *binding, seq uint16, sc *scratch) int {
	t := d.track
	var sent, bytes uint64
	for s := t.kfSeq; s != seq; s++ {
		first := s == t.kfSeq
		payload, ok := cachedPacket(t.cache, s, sc)
		if !ok {
			if first {
				return replayNoKeyframe
			}
			continue // lost upstream; the viewer's NACK may fetch it later
		}
		if first {
			d.start(&sc.hdr)
		}
		w := d.write(b, &sc.hdr, payload, &sc.hdr)
		if first {
			if w == 0 {
				// Pion drops packets (without an error) until the viewer's
				// DTLS handshake is done: replay once it is.
				d.started.Store(false)
				return replayNotReady
			}
			t.engine.stats.replays.Add(1) // counted as soon as the viewer can see it
		}
		if w > 0 {
			sent++
			bytes += uint64(w)
		}
	}
	stats := &t.engine.stats
	stats.packetsForwarded.Add(sent)
	stats.bytesForwarded.Add(bytes)
	return replayStarted
}

// cachedPacket loads packet seq from the cache into sc, parsing its header
// into sc.hdr, and returns its payload.
func cachedPacket(c *packetCache, seq uint16, sc *scratch) ([]byte, bool) {
	n := c.get(seq, sc.buf[:])
	if n == 0 {
		return nil, false
	}
	hl, err := sc.hdr.Unmarshal(sc.buf[:n])
	if err != nil {
		return nil, false
	}
	return trimPadding(&sc.hdr, sc.buf[:n], hl)
}

// start fixes the mapping so that the first packet sent is h, under a random
// sequence number and timestamp (RFC 3550 section 5.1).
func (d *DownTrack) start(h *rtp.Header) {
	d.seqOffset = uint16(rand.Uint32()) - h.SequenceNumber
	d.tsOffset = rand.Uint32() - h.Timestamp
	d.startSeq = h.SequenceNumber
	d.fresh = 0
	d.started.Store(true)
}

// write rewrites h into out (SSRC, payload type, sequence number, timestamp;
// the publisher's header extensions are dropped since their ids belong to the
// publisher's session) and sends it.
func (d *DownTrack) write(b *binding, h *rtp.Header, payload []byte, out *rtp.Header) int {
	if out != h {
		*out = *h
	}
	out.SSRC = b.ssrc
	out.PayloadType = b.pt
	out.SequenceNumber = h.SequenceNumber + d.seqOffset
	out.Timestamp = h.Timestamp + d.tsOffset
	out.Extension = false
	out.Extensions = out.Extensions[:0]
	out.Padding = false
	out.PaddingSize = 0
	n, err := b.writer.WriteRTP(out, payload)
	if err != nil {
		return 0
	}
	return n
}

// handleNACK resends the packets a viewer reports lost, from the track's
// shared cache, mapping the viewer's sequence numbers back to the source's.
func (d *DownTrack) handleNACK(nack *rtcp.TransportLayerNack) {
	b := d.bind.Load()
	if b == nil || !d.started.Load() {
		return
	}
	stats := &d.track.engine.stats
	d.rtxMu.Lock()
	defer d.rtxMu.Unlock()
	resend := func(out uint16) {
		stats.nacksReceived.Add(1)
		payload, ok := cachedPacket(d.track.cache, out-d.seqOffset, &d.rtx)
		if ok && d.write(b, &d.rtx.hdr, payload, &d.rtx.hdr) > 0 {
			stats.nacksAnswered.Add(1)
		}
	}
	for _, pair := range nack.Nacks {
		// The pair names PacketID and, by bitmask, the 16 that follow it.
		resend(pair.PacketID)
		for i := range uint16(16) {
			if pair.LostPackets&(1<<i) != 0 {
				resend(pair.PacketID + i + 1)
			}
		}
	}
}

// trimPadding returns the payload of pkt (header length hl) without RTP
// padding; ok is false when the padding length is impossible.
func trimPadding(h *rtp.Header, pkt []byte, hl int) (payload []byte, ok bool) {
	end := len(pkt)
	if h.Padding && end > hl {
		pad := int(pkt[end-1])
		if pad > end-hl {
			return nil, false
		}
		end -= pad
	}
	return pkt[hl:end], true
}
