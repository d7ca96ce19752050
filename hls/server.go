package hls

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/prometheus/client_golang/prometheus"
)

// Server serves /hls/{room}/...: it starts a room's muxer at the first
// request for its index.m3u8, hands each request to that muxer with the
// caching headers a CDN follows, and stops muxers nobody asks for.
type Server struct {
	cfg Config
	src Source
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session
	starting map[string]*starting
	closed   bool
	stop     chan struct{}
	reaped   chan struct{}

	stats stats
	errs  *prometheus.CounterVec // nil until RegisterMetrics
}

// NewServer returns a Server for cfg reading broadcasts from src. Close
// stops it.
func NewServer(cfg Config, src Source, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, src: src, log: log.With("component", "hls"), sessions: map[string]*session{}, starting: map[string]*starting{},
		stop: make(chan struct{}), reaped: make(chan struct{})}
	go s.reap()
	return s
}

// Close stops every muxer and the server's own goroutine.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	list := make([]*session, 0, len(s.sessions))
	for _, x := range s.sessions {
		list = append(list, x)
	}
	s.sessions = map[string]*session{}
	s.mu.Unlock()
	close(s.stop)
	<-s.reaped
	for _, x := range list {
		x.close()
	}
}

// Sessions returns how many rooms' muxers run.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// reap stops muxers idle for cfg.IdleTimeout or stalled for
// cfg.StallTimeout, and forgets ended ones.
func (s *Server) reap() {
	defer close(s.reaped)
	every := s.cfg.IdleTimeout
	if st := s.cfg.StallTimeout; st > 0 && st < every {
		every = st
	}
	tick := time.NewTicker(max(every/4, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			var idle []*session
			s.mu.Lock()
			for room, x := range s.sessions {
				if x.idleFor(now) > s.cfg.IdleTimeout || x.ended() || (s.cfg.StallTimeout > 0 && x.stalledFor(now) > s.cfg.StallTimeout) {
					idle = append(idle, x)
					delete(s.sessions, room)
				}
			}
			s.mu.Unlock()
			for _, x := range idle {
				x.close()
			}
		}
	}
}

func (x *session) ended() bool {
	select {
	case <-x.done:
		return true
	default:
		return false
	}
}

// ServeHTTP answers GET and HEAD of /hls/{room}/{file}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	room, file, ok := parsePath(r.URL.Path)
	if !ok {
		s.fail(w, newError(http.StatusBadRequest, CodeBadPath, "expected /hls/{room}/{file}.m3u8 or .mp4, with room and file of letters, digits, '-', '_' and '.'"))
		return
	}
	if s.cfg.SigningSecret != "" {
		if e := checkSignature(s.cfg.SigningSecret, room, r.URL.Query(), time.Now()); e != nil {
			s.fail(w, e)
			return
		}
	}
	x, e := s.session(room, file == "index.m3u8")
	if e != nil {
		s.fail(w, e)
		return
	}
	x.touch()
	if file == "index.m3u8" {
		ctx, cancel := context.WithTimeout(r.Context(), readyWait)
		defer cancel()
		select {
		case <-x.ready:
		case <-ctx.Done():
			s.fail(w, newError(http.StatusServiceUnavailable, CodeStarting, "the room's HLS is starting (waiting for a keyframe); ask again"))
			return
		}
		if x.ended() {
			s.fail(w, newError(http.StatusNotFound, CodeNoBroadcast, "the broadcast of room %q ended", room))
			return
		}
	}
	x.mux.Handle(&cacheWriter{ResponseWriter: w, file: file, blocking: r.URL.Query().Has("_HLS_msn")}, r)
}

// fail answers e and counts it.
func (s *Server) fail(w http.ResponseWriter, e *Error) {
	if s.errs != nil {
		s.errs.WithLabelValues(e.Code).Inc()
	}
	e.write(w)
}

// session returns the room's running muxer, starting one when start is
// set (a request for index.m3u8). A start may take seconds (a broadcast
// pulled from another node): other rooms' requests do not wait for it, and
// this room's wait for the same start.
func (s *Server) session(room string, start bool) (*session, *Error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, newError(http.StatusServiceUnavailable, CodeUnavailable, "the node is shutting down")
	}
	if x := s.sessions[room]; x != nil && !x.ended() {
		s.mu.Unlock()
		return x, nil
	}
	delete(s.sessions, room)
	if st := s.starting[room]; st != nil {
		s.mu.Unlock()
		<-st.done
		return st.x, st.err
	}
	if !start {
		s.mu.Unlock()
		return nil, newError(http.StatusNotFound, CodeNotFound, "no such HLS file of room %q now (its muxer restarted?): load index.m3u8 again", room)
	}
	st := &starting{done: make(chan struct{})}
	s.starting[room] = st
	s.mu.Unlock()

	x, err := startSession(s.cfg, s.src, room, s.log, &s.stats)
	s.mu.Lock()
	delete(s.starting, room)
	switch {
	case err != nil:
		var e *Error
		if !errors.As(err, &e) {
			s.log.Warn("hls: cannot start", "room", room, "err", err)
			e = newError(http.StatusServiceUnavailable, CodeUnavailable, "cannot start the room's HLS now; ask again")
		}
		st.err = e
	case s.closed:
		defer x.close()
		st.err = newError(http.StatusServiceUnavailable, CodeUnavailable, "the node is shutting down")
	default:
		s.sessions[room] = x
		s.stats.started.Add(1)
		s.log.Debug("hls: muxer started", "room", room)
		st.x = x
	}
	s.mu.Unlock()
	close(st.done)
	return st.x, st.err
}

// starting is a muxer being started; done is closed when x or err is set.
type starting struct {
	done chan struct{}
	x    *session
	err  *Error
}

// cacheWriter sets the caching headers of a muxer's answer by what it is:
// parts, segments and init segments are immutable (their names are unique
// to a muxer), playlists change each part, errors are never cached.
type cacheWriter struct {
	http.ResponseWriter
	file     string
	blocking bool
	wrote    bool
}

func (c *cacheWriter) WriteHeader(status int) {
	if !c.wrote {
		c.wrote = true
		h := c.Header()
		h.Del("Set-Cookie")
		switch {
		case status != http.StatusOK:
			h.Set("Cache-Control", "no-store")
		case strings.HasSuffix(c.file, ".mp4"):
			h.Set("Cache-Control", "public, max-age=86400, immutable")
		case c.blocking:
			// The answer to one _HLS_msn/_HLS_part request never changes
			// (later requests ask for later parts): a CDN may keep it for a
			// few target durations.
			h.Set("Cache-Control", "public, max-age=6")
		default:
			h.Set("Cache-Control", "public, max-age=1")
		}
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *cacheWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

// ConfigOf is the part of the hls section a Server reads.
func ConfigOf(c config.HLSConfig) Config {
	return Config{PartDuration: c.PartDuration, SegmentDuration: c.SegmentDuration, SegmentCount: c.SegmentCount,
		IdleTimeout: c.IdleTimeout, StallTimeout: c.StallTimeout, SigningSecret: c.SigningSecret}
}
