package loadtest

import (
	"strings"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// readBufferSize holds any RTP packet Pion delivers (its receive MTU is
// 1460 by default).
const readBufferSize = 1500

// FreezeThreshold is the gap between two video frames, as received, above
// which a viewer counts a freeze (what a person watching notices as a stall).
const FreezeThreshold = 500 * time.Millisecond

// onTrack starts the one reader goroutine of a new remote track, and one
// that reads the receiver's RTCP: the server's sender reports must reach
// the receiver-report interceptor, or our receiver reports carry no
// LSR/DLSR and the server cannot tell its round-trip time to us, as it can
// for a browser.
func (v *Viewer) onTrack(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	v.mu.Lock()
	firstVideo := video && v.videoOpened == 0
	if video {
		v.videoOpened++
	}
	v.mu.Unlock()
	clock := t.Codec().ClockRate
	h264 := strings.EqualFold(t.Codec().MimeType, webrtc.MimeTypeH264)
	v.goOwned(func() { v.readTrack(t, video, firstVideo, h264, clock) })
	v.goOwned(func() {
		buf := make([]byte, readBufferSize)
		for {
			if _, _, err := recv.Read(buf); err != nil {
				return
			}
		}
	})
}

// readTrack reads one remote track until it ends (renegotiated away or the
// peer connection closed), on one goroutine with one buffer.
func (v *Viewer) readTrack(t *webrtc.TrackRemote, video, firstVideo, h264 bool, clockRate uint32) {
	buf := make([]byte, readBufferSize)
	r := &trackReader{v: v, video: video, firstVideo: firstVideo, h264: h264, clockRate: clockRate}
	if firstVideo {
		v.videoSSRC.Store(uint32(t.SSRC()))
	}
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		r.handle(buf[:n])
	}
}

// trackReader is the per-packet state of one remote track. handle reuses
// one rtp.Packet, parses without allocating, and updates the viewer's
// lock-free counters; it takes the viewer's lock once per track (first
// packet) only.
type trackReader struct {
	v                   *Viewer
	video, firstVideo   bool
	h264                bool            // H.264 video (else VP8)
	frames              *frameAssembler // video: which frames arrived whole
	clockRate           uint32          // RTP clock of the track; 0 means unknown (no jitter)
	pkt                 rtp.Packet
	seq                 seqTracker
	gotPacket, gotFrame bool

	// RFC 3550 interarrival jitter state, in RTP clock units.
	jitter      float64
	lastArrival int64 // ns since the viewer's epoch
	lastRTP     uint32
}

func (r *trackReader) handle(b []byte) {
	if err := r.pkt.Unmarshal(b); err != nil {
		return
	}
	v := r.v
	now := int64(time.Since(v.epoch))
	v.bytes.Add(uint64(len(b)))
	switch d := r.seq.push(r.pkt.SequenceNumber); {
	case d > 0:
		v.lost.Add(int64(d))
		v.lostRaw.Add(uint64(d))
	case d < 0:
		v.lost.Add(int64(d))
		v.repaired.Add(uint64(-d))
	}
	if r.firstVideo {
		v.videoSeq.Store(uint32(r.seq.highest))
	}
	r.updateJitter(now)
	if !r.video {
		v.audioPackets.Add(1)
	} else {
		v.videoPackets.Add(1)
		var start, key bool
		var sentAt int64
		if r.h264 {
			info := parseH264(r.pkt.Payload)
			start, key, sentAt = info.Start, info.Keyframe, info.SentAt
		} else if info, err := ParseVP8(r.pkt.Payload); err == nil {
			start, key, sentAt = info.FrameStart, info.Keyframe, info.SentAt
		}
		if start {
			v.onFrameStart(key, r.firstVideo, !r.gotFrame, now)
			r.gotFrame = true
		}
		if r.frames == nil {
			r.frames = new(frameAssembler)
		}
		if f := r.frames.add(r.pkt.SequenceNumber, r.pkt.Timestamp, r.pkt.Marker, start, sentAt); f.ok {
			v.onFrameWhole(r.firstVideo, now, f.sentAt)
		}
	}
	if !r.gotPacket {
		// After the counters, so that WaitTracks returning means Stats
		// already shows the packet.
		r.gotPacket = true
		v.firstPacketAt.CompareAndSwap(0, max(now, 1))
		v.trackActive()
	}
}

// updateJitter runs the RFC 3550 section 6.4.1 estimator on the packet just
// parsed and publishes it, in microseconds, for the track's kind. Packets
// of one video frame share an RTP timestamp and arrive in a burst; that is
// what a browser's estimator sees too.
func (r *trackReader) updateJitter(now int64) {
	if r.clockRate == 0 {
		return
	}
	if r.lastArrival != 0 {
		arrival := float64(now-r.lastArrival) * float64(r.clockRate) / 1e9
		sent := float64(int32(r.pkt.Timestamp - r.lastRTP))
		d := arrival - sent
		if d < 0 {
			d = -d
		}
		r.jitter += (d - r.jitter) / 16
		us := uint64(r.jitter / float64(r.clockRate) * 1e6)
		if r.video {
			if r.firstVideo {
				r.v.jitterVideo.Store(us)
			}
		} else {
			r.v.jitterAudio.Store(us)
		}
	}
	r.lastArrival, r.lastRTP = now, r.pkt.Timestamp
}

// onFrameStart records the first packet of a video frame, as the server
// sent it: the keyframe count and the first-frame and first-keyframe
// facts. now is the arrival time in ns since the viewer's epoch.
func (v *Viewer) onFrameStart(key, firstVideoTrack, firstOfTrack bool, now int64) {
	if key {
		v.keyframes.Add(1)
	}
	if firstOfTrack {
		if key {
			v.keyFirstTracks.Add(1)
		}
		if firstVideoTrack {
			state := int32(2)
			if key {
				state = 1
			}
			v.firstVideo.CompareAndSwap(0, state)
		}
	}
	if key && v.firstKeyAt.Load() == 0 {
		v.firstKeyAt.CompareAndSwap(0, max(now, 1))
	}
}

// onFrameWhole records a video frame received whole (frameAssembler), at
// its last packet: a frame received, freezes on the first video track (a
// person sees a picture only once all of it arrived) and the one-way
// latency. A frame missing a packet counts for none of these.
func (v *Viewer) onFrameWhole(firstVideoTrack bool, now, sentAt int64) {
	v.frames.Add(1)
	if firstVideoTrack {
		if last := v.lastFrameAt.Swap(now); last != 0 && now-last > int64(FreezeThreshold) {
			v.freezes.Add(1)
			v.freezeNS.Add(uint64(now - last))
		}
	}
	v.recordLatency(sentAt)
}

// recordLatency records the one-way latency of a frame sent at sentAt
// (Unix ns; 0: unknown) after the viewer joined.
func (v *Viewer) recordLatency(sentAt int64) {
	if sentAt != 0 && sentAt >= v.joinedWall.Load() {
		v.latency.record(time.Duration(time.Now().UnixNano() - sentAt))
	}
}

// trackActive counts a track that delivered its first packet and wakes
// WaitTracks.
func (v *Viewer) trackActive() {
	v.mu.Lock()
	v.active++
	close(v.activeCh)
	v.activeCh = make(chan struct{})
	v.mu.Unlock()
}
