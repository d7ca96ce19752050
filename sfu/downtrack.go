package sfu

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// errNoCodec is returned by Bind when the viewer did not accept the track's codec.
var errNoCodec = errors.New("sfu: viewer does not support the track's codec")

// ErrCodecMismatch is returned by Switch when the new source's codec is not
// the one the viewer negotiated: the viewer must renegotiate instead.
var ErrCodecMismatch = errors.New("sfu: new source has another codec")

// binding is what Pion gives a down-track when the viewer's answer is applied.
type binding struct {
	ssrc   uint32
	pt     uint8
	writer webrtc.TrackLocalWriter
}

// States of a down-track.
const (
	dtWaiting   = iota // nothing sent under the current source: start on a picture
	dtReplaying        // being given the cached picture by replay rounds
	dtLive             // every packet of the source is written as it comes
)

// DownTrack is one viewer's copy of a published track: our own
// webrtc.TrackLocal. It keeps its binding's SSRC and payload type and maps
// its source's sequence numbers and timestamps into its own space.
//
// It starts a viewer on a decodable picture: the packets since the latest
// keyframe, replayed from the shared cache by the source's forwarder within
// a budget, then every live packet. It can be re-anchored to another source
// (Switch: the broadcaster republishing, a relay, a simulcast layer) or to
// the same one (a viewer's picture loss answered from the cache): sequence
// numbers and timestamps then continue from what the viewer last got, and the
// new source's picture starts on its keyframe, so the decoder sees one stream.
//
// Replayed timestamps: the cached picture can be seconds old. Sent with its
// own timestamps, it would leave the viewer seconds behind live (a jitter
// buffer plays frames at their timestamp spacing). So the span from the
// keyframe to the newest packet is compressed into at most 50 ms: the
// viewer decodes the catch-up frames in a burst and plays on at live pace,
// about 50 ms behind the newest packet. Packets after the span keep their
// true spacing.
type DownTrack struct {
	// lists is how many tracks' down-track lists it is on: two while it
	// waits for a new source's keyframe. It counts once in the engine's
	// down-tracks (halo_down_tracks) all the same.
	lists        atomic.Int32
	id, streamID string
	kind         webrtc.RTPCodecType
	codec        webrtc.RTPCodecCapability
	src          atomic.Pointer[Track]
	next         atomic.Pointer[Track] // a simulcast layer to move to at its next keyframe
	layerCap     atomic.Int32          // the best simulcast layer the viewer wants (LayerHigh)
	bw           *viewerBWE            // the viewer connection's estimator, nil without (bwe.go)
	bwLayer      atomic.Pointer[Track] // the best layer its link carries now
	bwst         bweState              // owned by the layer set's monitor
	bind         atomic.Pointer[binding]
	pliPending   atomic.Bool
	relay        bool   // the copy a relay carries to another node
	pinRID       string // a relay's copy of one simulcast layer: it stays on that layer
	fixedSSRC    uint32 // the SSRC a parked connection's answer gave it, 0 for the binding's (park.go)

	mu      sync.Mutex // guards what follows; held by the writer of each packet
	state   int
	anc     anchor
	cursor  uint16 // next source sequence number to replay
	fresh   int    // packets sent live since the anchor, up to freshWindow
	sent    bool   // something was sent: a new anchor continues from last*
	lastSeq uint16 // highest sequence number sent, and its timestamp
	lastTS  uint32
	lastAt  int64 // monoNow of the forwarder round that sent lastSeq
	// replayAt is monoNow when its replay of the cached picture began: a
	// replay that has not reached live within sfu.max_lag is given up
	// (replayMore, lag.go).
	replayAt int64
	pliAt    int64 // when a picture loss was last answered from the cache
	// needFresh: skipped ahead by its forwarder (lag.go), the viewer's
	// video starts again only on a keyframe that arrives after the skip.
	needFresh bool
	hdr       rtp.Header

	nack nackGuard // the viewer's retransmission budget and history

	// The lean write path (lean.go): the connection's link, nil on Pion's
	// path, and this down-track's SRTP context once it has keys.
	link  *leanLink
	sub   *Subscriber               // the connection, which hands RTCP to its down-tracks by SSRC (viewerrtcp.go)
	est   atomic.Pointer[estimated] // the connection's estimator sees every packet (bwe.go)
	out   atomic.Pointer[leanOut]
	outMu sync.Mutex
	// The writer's batch that holds (or held) the last packet queued, and
	// its flush count then (pendingSent); guarded by mu.
	lastBatch    *sendBatch
	lastEpoch    uint64
	pendingSince int64 // monoNow when a new anchor first waited for it
	// Sender report counts (senderreport.go): packets and payload octets sent.
	srPackets, srOctets atomic.Uint64
}

// anchor maps one source's packets into the viewer's space.
type anchor struct {
	srcStart  uint16 // first source sequence number under this anchor
	outStart  uint16
	seqOffset uint16 // out = src + seqOffset
	kfTS      uint32 // source timestamps of the replayed span [kfTS, kfTS+span]
	span      uint32
	cspan     uint32 // the span once compressed
	tsBase    uint32 // out timestamp of the keyframe
	tsOffset  uint32 // out = src + tsOffset after the span
}

// maxReplaySpan is the longest a replayed picture may take in the viewer's
// timestamps, in seconds' fraction (1/20 s).
const maxReplaySpanDiv = 20

func (a *anchor) mapTS(src uint32) uint32 {
	if a.span > a.cspan {
		if d := src - a.kfTS; int32(d) >= 0 && d <= a.span {
			return a.tsBase + uint32(uint64(d)*uint64(a.cspan)/uint64(a.span))
		}
	}
	return src + a.tsOffset
}

func newDownTrack(t *Track) *DownTrack {
	d := &DownTrack{id: t.info.ID, streamID: t.info.StreamID, kind: t.info.Kind, codec: t.codec}
	d.layerCap.Store(LayerHigh)
	d.src.Store(t)
	d.nack.init(t.engine.nackBudget)
	return d
}

// Bind implements webrtc.TrackLocal: the viewer accepted the track.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, ok := pickCodec(d.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, errNoCodec
	}
	// A parked connection's down-track sends under the SSRC its answer
	// gave (park.go), not the one its new sender drew.
	ssrc := uint32(ctx.SSRC())
	if d.fixedSSRC != 0 {
		ssrc = d.fixedSSRC
	}
	d.bind.Store(&binding{ssrc: ssrc, pt: uint8(c.PayloadType), writer: ctx.WriteStream()})
	if d.sub != nil {
		d.sub.bindSSRC(ssrc, d)
		if bw := d.sub.bwe; bw != nil && !d.relay {
			d.bindEstimator(bw, ssrc, ctx.HeaderExtensions())
		}
	}
	d.src.Load().addDown(d)
	return c, nil
}

// Unbind implements webrtc.TrackLocal: the viewer stopped the track, so its
// source stops writing to it.
func (d *DownTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	if d.sub != nil && d.sub.handed.Load() != nil {
		return nil // Pion's connection closed after the hand-over (handoff.go): the viewer still watches
	}
	d.unbindSub()
	return nil
}

// unbindSub stops the down-track: its source no longer writes to it.
func (d *DownTrack) unbindSub() {
	if b := d.bind.Load(); b != nil && d.sub != nil {
		d.sub.unbindSSRC(b.ssrc, d)
	}
	d.cancelNext()
	d.src.Load().removeDown(d)
}

// ID is the id of the track the down-track was created for. It stays the
// same when the down-track is re-anchored: it is the viewer's track id.
func (d *DownTrack) ID() string { return d.id }

// RID is empty: a down-track is one layer.
func (d *DownTrack) RID() string { return "" }

// StreamID is the publisher's participant id, so a viewer keeps the
// publisher's audio and video in one synchronised stream.
func (d *DownTrack) StreamID() string { return d.streamID }

// Kind is audio or video.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.kind }

// Track returns the track the down-track copies now.
func (d *DownTrack) Track() *Track { return d.src.Load() }

// Switch re-anchors the down-track to another source track of the same
// codec. The viewer's sequence numbers and timestamps continue; the new
// source's packets start at its next decodable picture (the cached one when
// there is one). It returns ErrCodecMismatch when the codecs differ.
//
// A simulcast track (or any of its layers) stands for its layers: the
// down-track goes to the layer its cap calls for.
func (d *DownTrack) Switch(to *Track) error {
	if !strings.EqualFold(to.codec.MimeType, d.codec.MimeType) || to.codec.ClockRate != d.codec.ClockRate {
		return ErrCodecMismatch
	}
	if to.group != nil {
		if d.pinRID != "" {
			for _, l := range *to.group.ranked.Load() {
				if l.info.RID == d.pinRID {
					to = l
				}
			}
		} else if l := to.group.pick(int(d.layerCap.Load())); l != nil {
			to = l
		}
	}
	d.cancelNext()
	old := d.src.Load()
	if old == to {
		return nil
	}
	old.removeDown(d)
	d.mu.Lock()
	d.src.Store(to)
	d.state = dtWaiting
	d.mu.Unlock()
	if d.bind.Load() != nil {
		to.addDown(d)
	}
	return nil
}

// onPacket writes one live source packet to the viewer and returns the
// bytes written (0 when the packet was not sent). It runs on t's forwarder
// (or one fan-out worker), which is the only writer of live packets.
func (d *DownTrack) onPacket(t *Track, h *rtp.Header, payload []byte, auStart bool, sc *scratch) int {
	b := d.bind.Load()
	if b == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.src.Load() != t {
		if d.next.Load() != t || !t.pic.kfValid || t.pic.kfTS != h.Timestamp {
			return 0 // re-anchored while this round was under way, or not yet the layer's keyframe
		}
		// The simulcast layer the viewer moves to has a new keyframe:
		// re-anchor there, starting with this keyframe's packets.
		old := d.src.Load()
		d.src.Store(t)
		d.next.Store(nil)
		d.state = dtWaiting
		old.removeDown(d)
		t.engine.stats.layerSwitches.Add(1)
	}
	if d.pliPending.Load() {
		d.pliPending.Store(false)
		d.servePLI(t)
	}
	if d.state == dtWaiting && !d.pendingSent(sc.batch, t.fwdAt) {
		return 0 // a new anchor: the old source's last packets leave first
	}
	switch d.state {
	case dtLive:
		if d.fresh < freshWindow {
			// Early on, a late retransmission from the publisher can be
			// older than the anchor's first packet; it would only confuse
			// the viewer.
			if int16(h.SequenceNumber-d.anc.srcStart) < 0 {
				return 0
			}
			d.fresh++
		}
		return d.send(b, t, h, payload, sc)
	case dtReplaying:
		return 0 // the replay reaches this packet through the cache
	}
	switch {
	case !t.isVideo():
		return d.startLive(b, t, h, payload, sc)
	case d.needFresh && (!t.pic.kfValid || t.pic.kfTS != h.Timestamp) && keyframeCodec(t.mime):
		// Skipped ahead (lag.go): the cached picture began before the
		// skip, and replaying it to every viewer is what an overloaded
		// node cannot afford. Start on the next keyframe, asked for now.
		t.RequestKeyframe()
		return 0
	case d.needFresh && t.pic.kfSeq == h.SequenceNumber:
		// That keyframe's first packet: sent live, in this round, rather
		// than by a replay round after the forwarder's backlog.
		d.needFresh = false
		return d.startLive(b, t, h, payload, sc)
	case t.pic.kfValid:
		if int16(h.SequenceNumber-t.pic.kfSeq) < 0 {
			return 0 // a late packet from before the picture
		}
		d.needFresh = false
		d.setAnchor(t, t.pic.kfSeq, t.pic.kfTS, t.pic.headTS)
		d.cursor = t.pic.kfSeq
		d.state = dtReplaying
		d.replayAt = t.fwdAt
		t.addReplaying(d)
		return 0
	case keyframeCodec(t.mime):
		t.RequestKeyframe()
		return 0
	default:
		// A codec whose keyframes the SFU cannot see: ask for one and start
		// at the next picture boundary.
		t.RequestKeyframe()
		if !auStart {
			return 0
		}
		return d.startLive(b, t, h, payload, sc)
	}
}

// startLive anchors the down-track at h and sends it.
func (d *DownTrack) startLive(b *binding, t *Track, h *rtp.Header, payload []byte, sc *scratch) int {
	d.setAnchor(t, h.SequenceNumber, h.Timestamp, h.Timestamp)
	n := d.send(b, t, h, payload, sc)
	if n > 0 {
		d.state = dtLive
		d.fresh = 0
	}
	return n
}

// freshWindow is how many packets after its start a down-track checks for
// packets older than its first one (beyond it sequence numbers wrap).
const freshWindow = 4096

// setAnchor starts mapping t's packets from srcSeq (timestamp kfTS) on, with
// headTS the newest timestamp of the replayed span. The first packet gets the
// sequence number after the last one sent (or a random one, RFC 3550 section
// 5.1, for the first anchor) and a timestamp advanced by the wall-clock time
// since then.
func (d *DownTrack) setAnchor(t *Track, srcSeq uint16, kfTS, headTS uint32) {
	var outSeq uint16
	var outTS uint32
	if d.sent {
		outSeq = d.lastSeq + 1
		ticks := uint64(max(t.fwdAt-d.lastAt, 0)) * uint64(d.codec.ClockRate) / 1e9
		outTS = d.lastTS + uint32(max(ticks, 1))
	} else {
		outSeq, outTS = uint16(rand.Uint32()), rand.Uint32()
	}
	span := headTS - kfTS
	if int32(span) < 0 {
		span = 0
	}
	cspan := min(span, d.codec.ClockRate/maxReplaySpanDiv)
	d.anc = anchor{
		srcStart: srcSeq, outStart: outSeq, seqOffset: outSeq - srcSeq,
		kfTS: kfTS, span: span, cspan: cspan, tsBase: outTS,
		tsOffset: outTS + cspan - headTS,
	}
}

// replayMore sends up to max packets of the cached picture to a replaying
// down-track. done reports that the down-track left the replay (it is live,
// or must start again).
func (d *DownTrack) replayMore(t *Track, max int, sc *scratch) (sent, bytes int, done bool) {
	b := d.bind.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.src.Load() != t || d.state != dtReplaying {
		return 0, 0, true
	}
	if b == nil {
		d.state = dtWaiting
		return 0, 0, true
	}
	end := t.pic.headSeq + 1
	if int(end-d.cursor) > t.cache.size() {
		d.state = dtWaiting // fell out of the cache: start on a newer picture
		return 0, 0, true
	}
	if m := t.engine.maxLag; m > 0 && t.fwdAt-d.replayAt > m && d.cursor != end {
		// Starved replay rounds (an overloaded node, a join storm on a
		// busy one) would leave the viewer behind live by what they did
		// not get to: it starts on the next keyframe instead, sent live
		// (lag.go).
		d.state = dtWaiting
		d.needFresh = true
		t.RequestKeyframe()
		t.engine.stats.forwarderSkips.Add(1)
		t.engine.stats.replaysGivenUp.Add(1)
		return 0, 0, true
	}
	for sent < max {
		if d.cursor == end {
			d.state = dtLive
			d.fresh = 0
			return sent, bytes, true
		}
		first := d.cursor == d.anc.srcStart
		payload, ok := cachedPacket(t.cache, d.cursor, sc)
		if !ok {
			if first {
				d.state = dtWaiting // the keyframe left the cache
				t.RequestKeyframe()
				return sent, bytes, true
			}
			d.cursor++ // lost upstream; the viewer's NACK may fetch it later
			continue
		}
		n := d.send(b, t, &sc.hdr, payload, sc)
		if first {
			if n == 0 {
				// Pion drops packets (without an error) until the viewer's
				// DTLS handshake is done: start again with the next packet.
				d.state = dtWaiting
				return 0, 0, true
			}
			t.engine.stats.replays.Add(1) // counted as soon as the viewer can see it
		}
		d.cursor++
		if n > 0 {
			sent++
			bytes += n
		}
	}
	return sent, bytes, false
}

func (d *DownTrack) isReplaying(t *Track) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.src.Load() == t && d.state == dtReplaying
}

func (d *DownTrack) abandonReplay(t *Track) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.src.Load() == t && d.state == dtReplaying {
		d.state = dtWaiting
	}
}

// send rewrites h (SSRC, payload type, sequence number, timestamp; the
// publisher's header extensions are dropped since their ids belong to the
// publisher's session) and writes it, into sc's batch on the lean path.
// d.mu is held.
func (d *DownTrack) send(b *binding, t *Track, h *rtp.Header, payload []byte, sc *scratch) int {
	out := &d.hdr
	rewrite(out, h, b, h.SequenceNumber+d.anc.seqOffset, d.anc.mapTS(h.Timestamp))
	n := d.write(b, out, payload, sc.sendBatch(t.engine))
	if n == 0 {
		return 0
	}
	if !d.sent || int16(out.SequenceNumber-d.lastSeq) > 0 {
		d.lastSeq, d.lastTS, d.lastAt, d.sent = out.SequenceNumber, out.Timestamp, t.fwdAt, true
	}
	return n
}

// write sends one rewritten packet and returns its size (0 when it was not
// sent). It never waits for the viewer: over UDP the kernel drops what a
// viewer's full socket cannot take; over ICE-TCP each connection has a
// bounded write buffer (see Engine) beyond which Pion drops packets for that
// viewer alone (silently: its ICE layer logs the error and reports success).
//
// On the lean path (lean.go) the packet is encrypted here and queued on sb,
// the writer's batch, or sent at once when sb is nil.
func (d *DownTrack) write(b *binding, h *rtp.Header, payload []byte, sb *sendBatch) int {
	if eo := d.est.Load(); eo != nil {
		return d.writeEstimated(eo, b, h, payload, sb)
	}
	return d.writeOut(b, h, payload, sb)
}

// writeOut is write without estimation.
func (d *DownTrack) writeOut(b *binding, h *rtp.Header, payload []byte, sb *sendBatch) int {
	st := &d.src.Load().engine.stats
	var n int
	l := d.link
	var k *leanKeys
	var p *leanPath
	if l != nil {
		k, p = l.keys.Load(), l.path.Load()
		if (k == nil || p == nil) && l.started.Load() {
			return 0 // the pair left the engine's sockets: the connection is being replaced
		}
	}
	switch {
	case k != nil && p != nil && !l.viaPion.Load():
		if n = d.writeLean(k, p, h, payload, sb); n == 0 {
			st.writeErrors.Add(1)
			return 0
		}
		if !l.started.Load() {
			l.started.Store(true)
		}
		if sb == nil {
			st.directPackets.Add(1) // a batch counts its own
		}
	default:
		if k != nil && !l.viaPion.Load() {
			// Encrypted packets go out through Pion after the handshake (a
			// first pair not on the engine's sockets): were the connection
			// to move to the lean path later, its own rollover counts would
			// start from zero while the viewer's continue. It stays here.
			l.viaPion.Store(true)
		}
		var err error
		if b.writer == nil {
			st.writeErrors.Add(1) // handed over from Pion: nothing goes its way any more
			return 0
		}
		if n, err = b.writer.WriteRTP(h, payload); err != nil {
			st.writeErrors.Add(1)
			return 0
		}
	}
	if n > 0 {
		d.srPackets.Add(1)
		d.srOctets.Add(uint64(len(payload)))
		if d.relay {
			st.relayPacketsOut.Add(1)
			st.relayBytesOut.Add(uint64(n))
		}
	}
	return n
}

func rewrite(out, h *rtp.Header, b *binding, seq uint16, ts uint32) {
	if out != h {
		// out keeps its own extension list: h's is the forwarder's, shared
		// by every down-track of the round.
		ext := out.Extensions
		*out = *h
		out.Extensions = ext
	}
	out.SSRC = b.ssrc
	out.PayloadType = b.pt
	out.SequenceNumber = seq
	out.Timestamp = ts
	out.Extension = false
	out.Extensions = out.Extensions[:0]
	out.Padding = false
	out.PaddingSize = 0
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

// switchAtKeyframe makes the down-track move to the simulcast layer to at
// that layer's next keyframe (requested now); until then it keeps copying
// the layer it has.
func (d *DownTrack) switchAtKeyframe(to *Track) {
	d.mu.Lock()
	if d.src.Load() == to {
		d.mu.Unlock()
		return
	}
	old := d.next.Swap(to)
	d.mu.Unlock()
	if old != to {
		if old != nil {
			old.removeDown(d)
		}
		if d.bind.Load() != nil {
			to.addDown(d)
		}
	}
	to.RequestKeyframe()
}

// cancelNext forgets a pending move to another layer.
func (d *DownTrack) cancelNext() {
	d.mu.Lock()
	old := d.next.Swap(nil)
	cur := d.src.Load()
	d.mu.Unlock()
	if old != nil && old != cur {
		old.removeDown(d)
	}
}

// SetLayer caps the simulcast layer the down-track copies (LayerLow,
// LayerMedium or LayerHigh); it moves at the target layer's next keyframe.
func (d *DownTrack) SetLayer(cap int) {
	d.layerCap.Store(int32(min(max(cap, LayerLow), LayerHigh)))
	if t := d.Track(); t != nil && t.group != nil {
		t.group.place(d)
	}
}
