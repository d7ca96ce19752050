package sfu

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// fuzzCodecs are the codecs FuzzTrackIngest feeds: every one whose
// keyframes the forwarder understands, and audio.
var fuzzCodecs = []webrtc.RTPCodecCapability{
	{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	{MimeType: webrtc.MimeTypeH264, ClockRate: 90000},
	{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000},
	{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000},
	{MimeType: webrtc.MimeTypeH265, ClockRate: 90000},
	{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
}

// fuzzSent is one packet a down-track wrote, with the source sequence
// number it stood for (mapped back through the anchor in force when it was
// written) and whether it was the first packet of that anchor.
type fuzzSent struct {
	out, src   uint16
	ssrc       uint32
	pt         uint8
	ext        bool
	payload    []byte
	firstOfAnc bool
}

// fuzzWriter is a TrackLocalWriter that keeps everything its down-track
// writes. It is called with the down-track's lock held (or, for NACK
// resends, from handleNACK), on the test's goroutine only.
type fuzzWriter struct {
	d     *DownTrack
	out   []fuzzSent
	bytes int
}

func (w *fuzzWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.out = append(w.out, fuzzSent{
		out: h.SequenceNumber, src: h.SequenceNumber - w.d.anc.seqOffset,
		ssrc: h.SSRC, pt: h.PayloadType, ext: h.Extension,
		payload:    append([]byte(nil), payload...),
		firstOfAnc: h.SequenceNumber == w.d.anc.outStart,
	})
	w.bytes += 12 + len(payload)
	return 12 + len(payload), nil
}

func (w *fuzzWriter) Write(b []byte) (int, error) { return len(b), nil }

func fuzzViewer(t *Track, ssrc uint32) (*DownTrack, *fuzzWriter) {
	d := newDownTrack(t)
	w := &fuzzWriter{d: d}
	d.bind.Store(&binding{ssrc: ssrc, pt: 96, writer: w})
	t.addDown(d)
	return d, w
}

func rtpBytes(pt uint8, seq uint16, ts uint32, marker bool, payload []byte) []byte {
	h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: 0x1234, Marker: marker}
	b, _ := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	return b
}

// ingestRecords frames packets as FuzzTrackIngest reads them: a two-byte
// length (its top bit set means "pump after this packet"), then the packet.
func ingestRecords(pkts ...[]byte) []byte {
	var out []byte
	for _, p := range pkts {
		out = binary.BigEndian.AppendUint16(out, uint16(len(p))|0x8000)
		out = append(out, p...)
	}
	return out
}

// seedStream is a realistic stream of codec: a keyframe access unit of
// several packets, then delta frames, with one packet arriving late and,
// when dup, one retransmitted twice.
func seedStream(pt uint8, key, delta [][]byte, dup bool) []byte {
	var pkts [][]byte
	seq, ts := uint16(65530), uint32(1000) // across the sequence wrap
	for i, p := range key {
		pkts = append(pkts, rtpBytes(pt, seq, ts, i == len(key)-1, p))
		seq++
	}
	for f := range 4 {
		ts += 3000
		for i, p := range delta {
			pkts = append(pkts, rtpBytes(pt, seq, ts, i == len(delta)-1, p))
			seq++
		}
		if f == 1 && dup {
			pkts = append(pkts, pkts[2]) // a retransmission of the keyframe's third packet
		}
	}
	pkts[3], pkts[4] = pkts[4], pkts[3] // reordered
	return ingestRecords(pkts...)
}

// FuzzTrackIngest feeds arbitrary publisher packets of every codec to a
// track with a viewer watching from the start and one joining late. It
// must never panic, and what viewers are sent must be what the publisher
// sent: the bytes of a packet that was ingested under that sequence number,
// with the viewer's SSRC and payload type; each start (anchor) of a video
// viewer on a packet of an access unit that holds a keyframe (that it is the
// unit's first packet is TestDownTrack_H264LateJoinerStartsAtTheAccessUnitsFirstPacket's
// job); and, when the publisher never repeated a sequence number, no
// sequence number sent twice.
func FuzzTrackIngest(f *testing.F) {
	vp8Key := [][]byte{{0x10, 0x00, 0x9d, 0x01, 0x2a}, {0x00, 0xaa}, {0x00, 0xbb}}
	vp8Delta := [][]byte{{0x10, 0x01, 0xcc}, {0x00, 0xdd}}
	h264Key := [][]byte{
		{0x78, 0x00, 0x03, 0x67, 0x42, 0x00, 0x00, 0x02, 0x68, 0xce}, // STAP-A: SPS, PPS
		{0x7c, 0x85, 0xaa}, {0x7c, 0x45, 0xbb}, // FU-A IDR slice 1
		{0x7c, 0x85, 0xcc}, {0x7c, 0x45, 0xdd}, // slice 2
	}
	h264Delta := [][]byte{{0x41, 0x9a, 0x01}}
	vp9Key := [][]byte{{0xa8, 0x05, 0x00, 0x01}, {0x20, 0x05, 0x00, 0x02}}
	vp9Delta := [][]byte{{0xe8, 0x06, 0x00, 0x03}}
	av1Key := [][]byte{{0x18, 0x0a, 0x0b, 0x00}, {0x90, 0x32, 0x01}}
	av1Delta := [][]byte{{0x10, 0x32, 0x00}}
	h265Key := [][]byte{{0x60, 0x01, 0x00, 0x02, 0x40, 0x01, 0x00, 0x02, 0x42, 0x01}, {0x62, 0x01, 0x93, 0xaa}, {0x62, 0x01, 0x53, 0xbb}}
	h265Delta := [][]byte{{0x02, 0x01, 0xcc}}
	opus := [][]byte{{0xfc, 0xff, 0xfe}}
	streams := [][2][][]byte{{vp8Key, vp8Delta}, {h264Key, h264Delta}, {vp9Key, vp9Delta}, {av1Key, av1Delta}, {h265Key, h265Delta}, {opus, opus}}
	pts := []uint8{96, 102, 98, 45, 49, 111}
	for i, st := range streams {
		f.Add(uint8(i), uint8(0), seedStream(pts[i], st[0], st[1], false))
		f.Add(uint8(i), uint8(5), seedStream(pts[i], st[0], st[1], false))
		f.Add(uint8(i), uint8(9), seedStream(pts[i], st[0], st[1], true))
	}
	// A padded packet and an oversized one.
	padded := rtpBytes(96, 7, 90, true, []byte{0x10, 0x00, 0x01, 0x00, 0x00, 0x03})
	padded[0] |= 0x20
	f.Add(uint8(0), uint8(1), ingestRecords(padded, append(rtpBytes(96, 8, 90, false, nil), make([]byte, 1600)...)))

	f.Fuzz(func(t *testing.T, codecIdx, joinAt uint8, data []byte) {
		codec := fuzzCodecs[int(codecIdx)%len(fuzzCodecs)]
		kind := webrtc.RTPCodecTypeVideo
		if codec.MimeType == webrtc.MimeTypeOpus {
			kind = webrtc.RTPCodecTypeAudio
		}
		e := newTestEngine()
		tr := newTrackFor(e, TrackInfo{ID: "t", Kind: kind, MimeType: codec.MimeType}, codec, 1, func(uint32) {})
		early, ew := fuzzViewer(tr, 7)
		var late *DownTrack
		var lw *fuzzWriter

		type ingested struct {
			payload     []byte
			forwardable bool // its padding is possible
			ts          uint32
		}
		latest := map[uint16]ingested{} // the packet last ingested per sequence number
		keyTS := map[uint32]bool{}      // timestamps of packets that carried a keyframe
		seen := map[uint16]bool{}
		dupSeq := false
		checked := map[*fuzzWriter]int{}
		check := func(w *fuzzWriter, ssrc uint32) {
			for _, s := range w.out[checked[w]:] {
				if s.ssrc != ssrc || s.pt != 96 || s.ext {
					t.Fatalf("viewer %d sent ssrc %d pt %d ext %v", ssrc, s.ssrc, s.pt, s.ext)
				}
				want, ok := latest[s.src]
				if !ok || !want.forwardable || !bytes.Equal(want.payload, s.payload) {
					t.Fatalf("viewer %d sent source packet %d (% x), which the publisher did not send like that (%+v, ingested %v)", ssrc, s.src, s.payload, want, ok)
				}
				if s.firstOfAnc && kind == webrtc.RTPCodecTypeVideo && !dupSeq && !keyTS[want.ts] {
					t.Fatalf("viewer %d started on source packet %d, not in a keyframe's access unit", ssrc, s.src)
				}
			}
			checked[w] = len(w.out)
		}
		pump := func() {
			tr.pump()
			check(ew, 7)
			if lw != nil {
				check(lw, 8)
			}
		}
		var h rtp.Header
		n := 0
		for len(data) >= 2 {
			l := int(binary.BigEndian.Uint16(data) & 0x7ff)
			pumpNow := data[0]&0x80 != 0
			data = data[2:]
			l = min(l, len(data))
			pkt := data[:l]
			data = data[l:]

			var ph rtp.Header
			if hl, err := ph.Unmarshal(pkt); err == nil && l <= maxCachedPacket {
				if seen[ph.SequenceNumber] {
					dupSeq = true
				}
				seen[ph.SequenceNumber] = true
				payload, ok := trimPadding(&ph, pkt, hl)
				latest[ph.SequenceNumber] = ingested{payload: append([]byte(nil), payload...), forwardable: ok, ts: ph.Timestamp}
				if ok && isKeyframe(tr.mime, payload) {
					keyTS[ph.Timestamp] = true
				}
			}
			tr.ingest(pkt, &h)
			if n++; n == int(joinAt) {
				pump()
				late, lw = fuzzViewer(tr, 8)
			}
			if pumpNow {
				pump()
			}
		}
		pump()
		if !dupSeq {
			for _, w := range []*fuzzWriter{ew, lw} {
				if w == nil {
					continue
				}
				sent := map[uint16]bool{}
				for _, s := range w.out {
					if sent[s.out] {
						t.Fatalf("sequence number %d sent twice to one viewer though the publisher sent each once", s.out)
					}
					sent[s.out] = true
				}
			}
		}
		tr.removeDown(early)
		if late != nil {
			tr.removeDown(late)
		}
		if tr.ViewerCount() != 0 || e.Stats().DownTracks != 0 {
			t.Fatalf("viewers left after removal: %d", tr.ViewerCount())
		}
	})
}

// FuzzViewerRTCP sends arbitrary RTCP from a viewer to its live down-track,
// dispatched as readViewerRTCP does (NACK, PLI, FIR, receiver reports), then
// more media, then the same feedback again. It must never panic; resends
// are only of packets the viewer was sent and stay within the viewer's
// retransmission budget (one burst plus what refills meanwhile); every
// NACKed sequence number is counted once as answered, ignored or dropped;
// and with a picture in the cache no PLI reaches the publisher.
func FuzzViewerRTCP(f *testing.F) {
	// Sequence numbers in the inputs are relative to the viewer's first
	// one (the harness adds its random offset), so inputs replay alike.
	bigNACK := &rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 7}
	for i := range 100 {
		bigNACK.Nacks = append(bigNACK.Nacks, rtcp.NackPair{PacketID: uint16(i * 17), LostPackets: 0xffff})
	}
	seeds := [][]rtcp.Packet{
		{&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 7, Nacks: []rtcp.NackPair{{PacketID: 290, LostPackets: 0b101}}}},
		{bigNACK},
		{&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 7}},
		{&rtcp.FullIntraRequest{SenderSSRC: 1, MediaSSRC: 7, FIR: []rtcp.FIREntry{{SSRC: 7, SequenceNumber: 1}}}},
		{&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 7, LastSequenceNumber: 299, LastSenderReport: ntpMiddle(fuzzNow) - 0x10, Delay: 0x8}}},
			&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 7, Nacks: []rtcp.NackPair{{PacketID: 250, LostPackets: 0xffff}}}},
		{&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 7, LastSenderReport: ntpMiddle(fuzzNow) - 5<<16}}}},
		{&rtcp.TransportLayerCC{SenderSSRC: 1, MediaSSRC: 7, BaseSequenceNumber: 1, PacketStatusCount: 1,
			PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 1}},
			RecvDeltas:   []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250}}}},
		{&rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 1, Bitrate: 1e6, SSRCs: []uint32{7}}},
		{&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1, Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "viewer"}}}}}},
		{&rtcp.Goodbye{Sources: []uint32{1}}},
	}
	for _, s := range seeds {
		b, err := rtcp.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x81, 0xcd, 0x00, 0xff, 0, 0, 0, 1}) // a NACK claiming 255 words it does not have

	f.Fuzz(func(t *testing.T, data []byte) {
		r := newTestRig(t)
		upstream := 0
		r.track.requestKeyframe = func(uint32) { upstream++ }
		d, w := fuzzViewer(r.track, 7)
		var h rtp.Header
		feed := func(from, to uint16) {
			for s := from; s < to; s++ {
				r.track.ingest(rtcpFuzzMedia[s], &h)
				r.track.pump()
			}
		}
		feed(0, 300) // more than the 256-packet cache holds
		sent := map[uint16]bool{}
		for _, s := range w.out {
			sent[s.out] = true
		}
		offset := d.anc.seqOffset
		start := monoNow()
		resent := 0
		dispatch := func() {
			pkts, err := rtcp.Unmarshal(data)
			if err != nil {
				return
			}
			for _, p := range pkts {
				switch p := p.(type) {
				case *rtcp.TransportLayerNack:
					for i := range p.Nacks {
						p.Nacks[i].PacketID += offset
					}
					before := len(w.out)
					d.handleNACK(p)
					for _, s := range w.out[before:] {
						if !sent[s.out] {
							t.Fatalf("resent sequence number %d, never sent to the viewer", s.out-offset)
						}
						resent += 12 + len(s.payload)
					}
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					d.handlePLI()
				case *rtcp.ReceiverReport:
					for _, rr := range p.Reports {
						d.handleReceiverReport(rr, fuzzNow)
					}
				}
			}
		}
		dispatch()
		before := len(w.out)
		feed(300, 302) // serves a pending PLI
		for _, s := range w.out[before:] {
			sent[s.out] = true
		}
		dispatch()
		elapsed := float64(monoNow()-start) / 1e9
		if limit := d.nack.burst + elapsed*d.nack.rate; float64(resent) > limit {
			t.Fatalf("resent %d bytes, budget %.0f (burst %.0f)", resent, limit, d.nack.burst)
		}
		st := r.track.engine.Stats()
		if st.NACKsReceived != st.NACKsAnswered+st.NACKsIgnored+st.NACKsDropped {
			t.Fatalf("NACKs received %d != answered %d + ignored %d + dropped %d", st.NACKsReceived, st.NACKsAnswered, st.NACKsIgnored, st.NACKsDropped)
		}
		if upstream != 0 || st.PLIsSent != 0 {
			t.Fatalf("%d keyframe requests went to the publisher with a picture in the cache", upstream)
		}
		if rtt := d.RTT(); rtt < 0 || rtt > 10*time.Second {
			t.Fatalf("RTT %v from a receiver report", rtt)
		}
	})
}

// rtcpFuzzMedia is the broadcast FuzzViewerRTCP's viewer watches: VP8,
// three packets a frame, a keyframe every 20 frames.
var rtcpFuzzMedia = func() [][]byte {
	pkts := make([][]byte, 302)
	for s := range pkts {
		pkts[s] = vp8Packet(uint16(s), uint32(s/3)*3000, s%60 == 0)
	}
	return pkts
}()

// fuzzNow is the receive time FuzzViewerRTCP gives receiver reports, so
// that their LSR and DLSR fields mean the same in every run.
var fuzzNow = time.Unix(1700000000, 0)
