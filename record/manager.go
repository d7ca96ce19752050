package record

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halobuzz/live/hls"
	"github.com/halobuzz/live/room"
	"github.com/prometheus/client_golang/prometheus"
)

// Manager records rooms: it implements room.Recorder. Close stops it.
type Manager struct {
	cfg Config
	hls http.Handler
	st  *store
	q   *queue
	log *slog.Logger

	mu     sync.Mutex
	recs   map[string]*recording
	closed bool

	onEvent func(Event)

	cancel context.CancelFunc
	done   chan struct{}
}

// Event tells what happened to a recording: Type is "recording_started"
// or "recording_finished".
type Event struct {
	Type      string
	Recording room.Recording
}

// New returns a Manager that reads rooms' LL-HLS from h (the node's
// hls.Server) and uploads them as cfg says.
func New(cfg Config, h http.Handler, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "recording")
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = 250 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("record: spool directory: %w", err)
	}
	st, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, hls: h, st: st, q: newQueue(st, cfg.SpoolMaxBytes, cfg.RetryMax, log), log: log,
		recs: map[string]*recording{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		m.q.run(ctx)
	}()
	return m, nil
}

// OnEvent sets what is told of recordings started and finished; set it
// before the first start.
func (m *Manager) OnEvent(f func(Event)) { m.onEvent = f }

func (m *Manager) emit(typ string, r room.Recording) {
	if m.onEvent != nil {
		m.onEvent(Event{Type: typ, Recording: r})
	}
}

// StartRecording starts recording the room (room.Recorder).
func (m *Manager) StartRecording(ctx context.Context, name string) (room.Recording, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return room.Recording{}, room.ErrRecordingDisabled
	}
	if m.recs[name] != nil {
		m.mu.Unlock()
		return room.Recording{}, room.ErrRecordingActive
	}
	r := &recording{m: m, stop: make(chan struct{}), done: make(chan struct{})}
	m.recs[name] = r // reserved while it starts
	m.mu.Unlock()

	err := r.open(ctx, name)
	m.mu.Lock()
	if err != nil || m.closed {
		delete(m.recs, name)
		m.mu.Unlock()
		if err == nil {
			err = room.ErrRecordingDisabled
		}
		return room.Recording{}, err
	}
	r.running = true
	m.mu.Unlock()
	go r.run()
	info := r.snapshot()
	m.log.Info("recording started", "room", name, "recording", info.ID, "playlist", info.PlaylistURL)
	m.emit("recording_started", info)
	return info, nil
}

// StopRecording stops the room's recording (room.Recorder): it returns
// once its VOD playlists are in the spool, before they are uploaded.
func (m *Manager) StopRecording(ctx context.Context, name string) (room.Recording, error) {
	m.mu.Lock()
	r := m.recs[name]
	running := r != nil && r.running
	m.mu.Unlock()
	if !running {
		return room.Recording{}, room.ErrNotRecording
	}
	r.close()
	select {
	case <-r.done:
	case <-ctx.Done():
		return room.Recording{}, ctx.Err()
	}
	return r.snapshot(), nil
}

// Recording returns the room's running recording.
func (m *Manager) Recording(name string) (room.Recording, bool) {
	m.mu.Lock()
	r := m.recs[name]
	if r == nil || !r.running {
		m.mu.Unlock()
		return room.Recording{}, false
	}
	m.mu.Unlock()
	return r.snapshot(), true
}

// ended forgets a recording that finished.
func (m *Manager) ended(r *recording) {
	m.mu.Lock()
	if m.recs[r.info.Room] == r {
		delete(m.recs, r.info.Room)
	}
	m.mu.Unlock()
}

// Close stops every recording, waits up to wait for the spool to be
// uploaded, and stops. What is still spooled then stays in
// recording.spool_dir.
func (m *Manager) Close(wait time.Duration) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	list := make([]*recording, 0, len(m.recs))
	for _, r := range m.recs {
		if r.running {
			list = append(list, r)
		}
	}
	m.mu.Unlock()
	for _, r := range list {
		r.close()
		<-r.done
	}
	t := time.NewTimer(wait)
	select {
	case <-m.q.waitIdle():
	case <-t.C:
	}
	t.Stop()
	m.cancel()
	<-m.done
	if n := m.q.pending(); n > 0 {
		m.log.Warn("recording: objects left in the spool at the stop", "objects", n, "spool_dir", m.cfg.SpoolDir)
	}
}

// get reads one file of the room's LL-HLS from the muxer, in process.
func (m *Manager) get(ctx context.Context, name, file string) (int, []byte) {
	target := "/hls/" + name + "/" + file
	if m.cfg.HLSSigningSecret != "" {
		target += "?" + hls.Sign(m.cfg.HLSSigningSecret, name, time.Now().Add(time.Hour))
	}
	req := httptest.NewRequest(http.MethodGet, target, nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	m.hls.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// newID names a recording: its start time, sortable, and a random suffix.
func newID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// hlsError maps the muxer's refusal of index.m3u8 to room's errors.
func hlsError(status int, body []byte) error {
	s := string(body)
	switch {
	case strings.HasPrefix(s, hls.CodeNoBroadcast), strings.HasPrefix(s, hls.CodeNotFound):
		return room.ErrNoTracks
	case strings.HasPrefix(s, hls.CodeCodecUnsupported):
		return room.ErrRecordingCodec
	case strings.HasPrefix(s, hls.CodeStarting), strings.HasPrefix(s, hls.CodeUnavailable):
		// No keyframe yet, or the node stops: the caller may retry.
		return fmt.Errorf("record: the room's LL-HLS is not ready: %w", context.DeadlineExceeded)
	}
	line, _, _ := strings.Cut(s, "\n")
	return fmt.Errorf("record: the room's LL-HLS answered %d: %.200s", status, line)
}

// RegisterMetrics registers on reg the recordings' metrics of m:
// halo_recording_active, halo_recording_spool_bytes,
// halo_recording_spool_max_bytes, halo_recording_segments_dropped_total,
// halo_recording_uploads_total and halo_recording_upload_failures_total.
// A nil m (recording.enabled false) exports them at 0: every node has
// what the alert rules read.
func RegisterMetrics(reg prometheus.Registerer, m *Manager) {
	var (
		q          = &queue{}
		active     = func() int { return 0 }
		spoolBound int64
	)
	if m != nil {
		q, spoolBound = m.q, m.cfg.SpoolMaxBytes
		active = func() int {
			m.mu.Lock()
			defer m.mu.Unlock()
			return len(m.recs)
		}
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("halo_recording_active", "Recordings running on this node.", func() float64 { return float64(active()) })
	gauge("halo_recording_spool_bytes", "Bytes of recordings spooled on this node, not uploaded yet.",
		func() float64 { return float64(q.spoolBytes.Load()) })
	gauge("halo_recording_spool_max_bytes", "The spool's bound (recording.spool_max_bytes); 0 when the node does not record.",
		func() float64 { return float64(spoolBound) })
	for _, c := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"halo_recording_segments_dropped_total", "Recording segments dropped: the spool was full (the store unreachable too long).", &q.dropped},
		{"halo_recording_uploads_total", "Recording objects uploaded.", &q.uploaded},
		{"halo_recording_upload_failures_total", "Recording upload attempts that failed (each is retried).", &q.failures},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.v.Load()) }))
	}
}
