package hls

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
)

// Config is what a Server needs of the hls section (config.HLSConfig).
type Config struct {
	PartDuration    time.Duration
	SegmentDuration time.Duration
	SegmentCount    int
	IdleTimeout     time.Duration
	StallTimeout    time.Duration
	SigningSecret   string
}

// session is one room's muxer: the taps of its tracks feed a ring, one
// goroutine (run) depacketizes and writes to gohlslib's muxer, which serves
// the playlists, parts and segments.
type session struct {
	cfg   Config
	room  string
	log   *slog.Logger
	mux   *gohlslib.Muxer
	video *gohlslib.Track // nil for an audio-only broadcast
	audio *gohlslib.Track // nil without audio
	ring  *ring
	taps  []Tap
	// release lets go of a broadcast pulled from another node (Hold).
	release func()
	start   time.Time
	stats   *stats

	lastReq atomic.Int64  // unix nanoseconds of the last request
	lastIn  atomic.Int64  // unix nanoseconds of the last packet taken from the ring
	errors  atomic.Uint64 // what the muxer refused; its own goroutines count too
	ready   chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	// Owned by run.
	vclock, aclock clock
	vdep           depacketizer // the video's, nil without video
	auTS           uint32
	auOpen         bool
	nextSeq        uint16
	seqKnown       bool
}

// clock maps one track's RTP timestamps to the muxer's presentation time:
// the first packet is placed at its arrival since the session started, so
// audio and video line up to within the network's jitter.
type clock struct {
	started bool
	last    uint32
	pts     int64
}

func (c *clock) at(ts uint32, rate int64, since time.Duration) int64 {
	if !c.started {
		c.started, c.last = true, ts
		c.pts = int64(since) * rate / int64(time.Second)
		return c.pts
	}
	c.pts += int64(int32(ts - c.last))
	c.last = ts
	return c.pts
}

// readyWait is how long the first playlist request waits for the first
// segment of a muxer it started (a keyframe must come first).
const readyWait = 10 * time.Second

// startSession picks the room's tracks, starts a muxer for them and taps
// them. It answers an *Error for what a player can be told.
func startSession(cfg Config, src Source, room string, log *slog.Logger, st *stats) (*session, error) {
	// A broadcast published on another node (or relayed here for someone
	// else, who may leave) is held here for the muxer's life, as a WHEP
	// player of this node would hold it; one published here needs nothing.
	release := func() {}
	ctx, cancel := context.WithTimeout(context.Background(), readyWait)
	rel, err := src.Hold(ctx, room)
	cancel()
	switch {
	case err == nil:
		release = rel
	case err != ErrNoBroadcast:
		// The cluster cannot help now (Redis down, the node full): what is
		// published here is still served.
		log.Warn("hls: cannot pull the room from another node", "room", room, "err", err)
	}
	refs, err := src.Tracks(room)
	if err != nil {
		release()
	}
	if err == ErrNoBroadcast {
		return nil, newError(http.StatusNotFound, CodeNoBroadcast, "room %q has no broadcast", room)
	}
	if err != nil {
		return nil, fmt.Errorf("hls: tracks of room %q: %w", room, err)
	}
	s, err := newSession(cfg, src, room, refs, log, st)
	if err != nil {
		release()
		return nil, err
	}
	s.release = release
	s.touch()
	s.lastIn.Store(time.Now().UnixNano())
	go s.run()
	go s.awaitReady()
	return s, nil
}

// newSession starts the muxer for refs and taps them.
func newSession(cfg Config, src Source, room string, refs []TrackRef, log *slog.Logger, st *stats) (*session, error) {
	var video, audio *TrackRef
	for i := range refs {
		r := &refs[i]
		switch {
		case r.Kind == "video" && video == nil:
			video = r
		case r.Kind == "audio" && audio == nil && strings.EqualFold(r.Codec, "audio/opus"):
			audio = r
		}
	}
	s := &session{cfg: cfg, room: room, log: log.With("room", room), ring: newRing(&st.dropped), stats: st, start: time.Now(),
		ready: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	var tracks []*gohlslib.Track
	if video != nil {
		t, d, err := videoFor(video.Codec)
		if err != nil {
			return nil, err
		}
		s.video, s.vdep = t, d
		tracks = append(tracks, s.video)
	}
	if audio != nil {
		s.audio = &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: 2}, ClockRate: 48000}
		tracks = append(tracks, s.audio)
	}
	if len(tracks) == 0 {
		return nil, newError(http.StatusUnsupportedMediaType, CodeCodecUnsupported,
			"room %q carries no track HLS can take without transcoding (H.264 video, Opus audio)", room)
	}
	s.mux = &gohlslib.Muxer{
		Tracks: tracks, Variant: gohlslib.MuxerVariantLowLatency, SegmentCount: cfg.SegmentCount,
		SegmentMinDuration: cfg.SegmentDuration, PartMinDuration: cfg.PartDuration,
		OnEncodeError: s.noteError, // else gohlslib writes to the standard logger
	}
	if err := s.mux.Start(); err != nil {
		return nil, fmt.Errorf("hls: start muxer of room %q: %w", room, err)
	}
	for _, ref := range []*TrackRef{video, audio} {
		if ref == nil {
			continue
		}
		t, err := src.Tap(room, ref.ID, input{r: s.ring, video: ref == video})
		if err != nil {
			s.closeTaps()
			s.mux.Close()
			return nil, fmt.Errorf("hls: tap %s of room %q: %w", ref.ID, room, err)
		}
		s.taps = append(s.taps, t)
	}
	return s, nil
}

// awaitReady closes ready once the muxer has its first segment (the
// multivariant playlist, which gohlslib holds back until then, can be
// written), or when the session ends.
func (s *session) awaitReady() {
	defer close(s.ready)
	req := httptest.NewRequest(http.MethodGet, "/index.m3u8", nil)
	s.mux.Handle(httptest.NewRecorder(), req)
}

func (s *session) touch() { s.lastReq.Store(time.Now().UnixNano()) }

// stalledFor is how long the broadcast has sent the muxer nothing.
func (s *session) stalledFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, s.lastIn.Load()))
}

func (s *session) idleFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, s.lastReq.Load()))
}

// close stops the session and waits for its goroutine.
func (s *session) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

func (s *session) closeTaps() {
	for _, t := range s.taps {
		t.Close()
	}
}

// run is the session's one goroutine: it takes packets from the ring in
// order and writes whole access units (and Opus packets) to the muxer,
// until stopped or a tapped track ends.
func (s *session) run() {
	defer close(s.done)
	defer func() {
		s.closeTaps()
		s.release()
		s.mux.Close()
		<-s.ready
		if d, e := s.ring.dropped.Load(), s.errors.Load(); d > 0 || e > 0 {
			s.log.Info("hls: muxer stopped", "dropped_packets", d, "mux_errors", e)
		} else {
			s.log.Debug("hls: muxer stopped")
		}
	}()
	// ends[i] is tap i's Done, nil while its track has ended and the
	// room waits for its broadcaster to publish again (Follow).
	ends := make([]<-chan struct{}, len(s.taps))
	for i, t := range s.taps {
		ends[i] = t.Done()
	}
	var follow *time.Ticker
	defer func() {
		if follow != nil {
			follow.Stop()
		}
	}()
	// A browser's encoder sends a keyframe only when asked: without one a
	// segment never ends (the first one: 503 hls_starting for ever). Each
	// segment_duration the muxer asks for one if the last came more than
	// two segment durations ago; an encoder with keyframes of its own that
	// often (OBS's 2 s) is not asked.
	var keyTick <-chan time.Time
	if s.video != nil && s.cfg.SegmentDuration > 0 && len(s.taps) > 0 {
		k := time.NewTicker(s.cfg.SegmentDuration)
		defer k.Stop()
		keyTick = k.C
	}
	for {
		var end0, end1 <-chan struct{}
		if len(ends) > 0 {
			end0 = ends[0]
		}
		if len(ends) > 1 {
			end1 = ends[1]
		}
		var tick <-chan time.Time
		if follow != nil {
			tick = follow.C
		}
		select {
		case <-s.stop:
			return
		case <-end0:
			ends[0] = nil
		case <-end1:
			ends[1] = nil
		case <-tick:
			if !s.follow(ends) {
				return
			}
		case <-keyTick:
			if v := s.taps[0]; v.KeyframeAge() > 2*s.cfg.SegmentDuration {
				v.RequestKeyframe()
			}
		case i := <-s.ring.full:
			s.lastIn.Store(time.Now().UnixNano())
			sl := &s.ring.slots[i]
			if sl.video {
				s.onVideo(sl)
			} else {
				s.onAudio(sl)
			}
			s.ring.free <- i
		}
		waiting := slices.Contains(ends, nil)
		switch {
		case waiting && follow == nil:
			follow = time.NewTicker(followEvery)
		case !waiting && follow != nil:
			follow.Stop()
			follow = nil
		}
	}
}

// followEvery is how often a muxer whose track ended asks whether its
// broadcaster published it again.
const followEvery = 250 * time.Millisecond

// follow moves the taps whose tracks ended to their republished tracks. It
// returns false when a track is gone for good: the muxer stops.
func (s *session) follow(ends []<-chan struct{}) bool {
	for i, t := range s.taps {
		if ends[i] != nil {
			continue
		}
		moved, gone := t.Follow()
		if gone {
			return false
		}
		if moved {
			ends[i] = t.Done()
			s.log.Debug("hls: muxer follows the republished track")
		}
	}
	return true
}

func (s *session) onVideo(sl *slot) {
	if s.video == nil {
		return
	}
	if s.seqKnown && sl.seq != s.nextSeq {
		s.vdep.drop() // a packet of this picture is missing
	}
	s.seqKnown, s.nextSeq = true, sl.seq+1
	if s.auOpen && sl.ts != s.auTS {
		s.flushVideo() // the previous access unit ended without its marker
	}
	s.auOpen, s.auTS = true, sl.ts
	if err := s.vdep.push(sl.buf[:sl.n]); err != nil {
		s.vdep.drop()
	}
	if sl.marker {
		s.flushVideo()
	}
}

func (s *session) flushVideo() {
	s.auOpen = false
	pts := s.vclock.at(s.auTS, 90000, time.Since(s.start))
	if err := s.vdep.write(s.mux, s.video, time.Now(), pts); err != nil {
		s.noteError(err)
	}
}

func (s *session) onAudio(sl *slot) {
	if s.audio == nil || sl.n == 0 {
		return
	}
	pts := s.aclock.at(sl.ts, 48000, time.Since(s.start))
	pkt := make([]byte, sl.n) // the muxer keeps it until its part is written
	copy(pkt, sl.buf[:sl.n])
	if err := s.mux.WriteOpus(s.audio, time.Now(), pts, [][]byte{pkt}); err != nil {
		s.noteError(err)
	}
}

// noteError counts a muxer error; the first is logged, the count at the
// end. The muxer's own goroutines call it too (OnEncodeError).
func (s *session) noteError(err error) {
	if s.errors.Add(1) == 1 {
		s.log.Warn("hls: muxer error (the first of this muxer; halo_hls_mux_errors_total counts them)", "err", err)
	}
	s.stats.muxErrors.Add(1)
}
