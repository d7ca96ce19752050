package loadtest

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// readBufferSize holds any RTP packet Pion delivers (its receive MTU is
// 1460 by default).
const readBufferSize = 1500

// onTrack starts the one reader goroutine of a new remote track.
func (v *Viewer) onTrack(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	v.mu.Lock()
	firstVideo := video && v.videoOpened == 0
	if video {
		v.videoOpened++
	}
	v.mu.Unlock()
	v.goOwned(func() { v.readTrack(t, video, firstVideo) })
}

// readTrack reads one remote track until it ends (renegotiated away or the
// peer connection closed), on one goroutine with one buffer.
func (v *Viewer) readTrack(t *webrtc.TrackRemote, video, firstVideo bool) {
	buf := make([]byte, readBufferSize)
	r := &trackReader{v: v, video: video, firstVideo: firstVideo}
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
	pkt                 rtp.Packet
	seq                 seqTracker
	gotPacket, gotFrame bool
}

func (r *trackReader) handle(b []byte) {
	if err := r.pkt.Unmarshal(b); err != nil {
		return
	}
	v := r.v
	v.bytes.Add(uint64(len(b)))
	if d := r.seq.push(r.pkt.SequenceNumber); d != 0 {
		v.lost.Add(int64(d))
	}
	if r.firstVideo {
		v.videoSeq.Store(uint32(r.seq.highest))
	}
	if !r.video {
		v.audioPackets.Add(1)
	} else {
		v.videoPackets.Add(1)
		if info, err := ParseVP8(r.pkt.Payload); err == nil && info.FrameStart {
			v.onFrame(info, r.firstVideo, !r.gotFrame)
			r.gotFrame = true
		}
	}
	if !r.gotPacket {
		// After the counters, so that WaitTracks returning means Stats
		// already shows the packet.
		r.gotPacket = true
		v.trackActive()
	}
}

// onFrame records a video frame start: the first-frame and first-keyframe
// facts and the one-way latency.
func (v *Viewer) onFrame(info VP8Info, firstVideoTrack, firstOfTrack bool) {
	v.frames.Add(1)
	if info.Keyframe {
		v.keyframes.Add(1)
	}
	if firstOfTrack {
		if info.Keyframe {
			v.keyFirstTracks.Add(1)
		}
		if firstVideoTrack {
			state := int32(2)
			if info.Keyframe {
				state = 1
			}
			v.firstVideo.CompareAndSwap(0, state)
		}
	}
	if info.Keyframe && v.firstKeyAt.Load() == 0 {
		v.firstKeyAt.CompareAndSwap(0, int64(max(time.Since(v.epoch), 1)))
	}
	if info.SentAt != 0 {
		v.latency.record(time.Duration(time.Now().UnixNano() - info.SentAt))
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
