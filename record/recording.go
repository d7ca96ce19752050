package record

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"github.com/halobuzz/live/room"
)

// recording is one room's recording: its goroutine (run) reads the
// muxer's playlists every PollEvery, spools each new init segment and
// segment, and queues them with the playlists that list them.
type recording struct {
	m       *Manager
	log     *slog.Logger
	base    string // the key of its directory, ending in "/"
	dir     string // its spool directory
	mv      *playlist.Multivariant
	running bool // under m.mu: started, until it is forgotten

	stop chan struct{}
	done chan struct{}
	once sync.Once

	// Owned by run.
	streams   []*stream
	indexSent bool

	mu   sync.Mutex // info's counts and ends, and the streams' segments
	info room.Recording
}

// stream is one media playlist of the muxer (video, or an audio
// rendition) and what the recording took of it.
type stream struct {
	uri      string // the muxer's playlist: "video1_stream.m3u8"
	mapURI   string // the muxer's init segment, "" until read
	initName string
	next     int // the first media sequence number not taken; -1 before the first read
	segs     []*segment
}

// open reads the room's multivariant playlist (starting its muxer): it
// answers why the room cannot be recorded.
func (r *recording) open(ctx context.Context, name string) error {
	status, body := r.m.get(ctx, name, "index.m3u8")
	if status != http.StatusOK {
		return hlsError(status, body)
	}
	mv, uris, err := parseMultivariant(body)
	if err != nil {
		return err
	}
	now := time.Now()
	id := newID(now)
	r.base = r.m.cfg.Prefix + name + "/" + id + "/"
	r.dir = filepath.Join(r.m.cfg.SpoolDir, name+"-"+id)
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return fmt.Errorf("record: spool directory: %w", err)
	}
	r.mv = mv
	for _, u := range uris {
		r.streams = append(r.streams, &stream{uri: u, next: -1})
	}
	r.info = room.Recording{ID: id, Room: name, StartedAt: now, PlaylistURL: r.m.st.url(r.base + "index.m3u8")}
	r.log = r.m.log.With("room", name, "recording", id)
	return nil
}

func (r *recording) snapshot() room.Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info
}

func (r *recording) close() { r.once.Do(func() { close(r.stop) }) }

// run takes the muxer's segments until stopped or the broadcast ends.
func (r *recording) run() {
	defer close(r.done)
	tick := time.NewTicker(r.m.cfg.PollEvery)
	defer tick.Stop()
	why := "stopped"
	for {
		if end := r.poll(); end != "" {
			why = end
			break
		}
		select {
		case <-r.stop:
			r.poll() // what the muxer finished since the last read
		case <-tick.C:
			continue
		}
		break
	}
	r.finish(why)
}

// poll reads each stream's playlist once and takes its new segments. It
// returns why the recording ends, or "".
func (r *recording) poll() string {
	ctx := context.Background()
	name := r.info.Room
	for _, s := range r.streams {
		status, body := r.m.get(ctx, name, s.uri)
		if status != http.StatusOK {
			return "the broadcast ended"
		}
		pl, err := parseMedia(body)
		if err != nil {
			r.log.Warn("recording: the muxer's playlist does not parse; the recording ends", "err", err)
			return "unreadable playlist"
		}
		mapURI := stripQuery(pl.Map.URI)
		switch {
		case s.mapURI == "":
			if !r.takeInit(ctx, s, mapURI) {
				return "the broadcast ended"
			}
		case s.mapURI != mapURI:
			return "the room's muxer restarted" // a new broadcast: a new recording
		}
		if s.next < 0 {
			// The recording starts at the newest whole segment.
			s.next = pl.MediaSequence + len(pl.Segments) - 1
		}
		for i, seg := range pl.Segments {
			msn := pl.MediaSequence + i
			if msn < s.next || seg.Gap {
				continue
			}
			s.next = msn + 1
			r.takeSegment(ctx, s, seg)
		}
	}
	if !r.indexSent && r.allStarted() {
		r.indexSent = true
		r.pushIndex(false)
	}
	return ""
}

func (r *recording) allStarted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.streams {
		if len(s.segs) == 0 {
			return false
		}
	}
	return true
}

// takeInit spools and queues a stream's init segment.
func (r *recording) takeInit(ctx context.Context, s *stream, mapURI string) bool {
	if !safeName(objectName(mapURI)) {
		r.log.Warn("recording: the muxer's init segment has a name the recording cannot use", "uri", mapURI)
		return false
	}
	status, body := r.m.get(ctx, r.info.Room, mapURI)
	if status != http.StatusOK {
		return false
	}
	s.mapURI, s.initName = mapURI, objectName(mapURI)
	file, err := r.spool(s.initName, body)
	if err != nil {
		r.log.Error("recording: cannot spool the init segment", "err", err)
		return false
	}
	r.m.q.push(&item{rec: r, key: r.base + s.initName, ctype: "video/mp4", file: file, size: int64(len(body))})
	return true
}

// takeSegment spools and queues one segment and the stream's playlist.
func (r *recording) takeSegment(ctx context.Context, s *stream, seg *playlist.MediaSegment) {
	name := objectName(seg.URI)
	status, body := r.m.get(ctx, r.info.Room, stripQuery(seg.URI))
	sg := &segment{name: name, duration: seg.Duration}
	r.mu.Lock()
	s.segs = append(s.segs, sg)
	r.info.Segments++
	r.mu.Unlock()
	if status != http.StatusOK || !safeName(name) {
		r.log.Warn("recording: a segment left the muxer before it was read", "segment", name, "status", status)
		r.segmentDropped(sg)
		return
	}
	file, err := r.spool(name, body)
	if err != nil {
		r.log.Error("recording: cannot spool a segment", "segment", name, "err", err)
		r.segmentDropped(sg)
		return
	}
	r.m.q.push(&item{rec: r, key: r.base + name, ctype: "video/mp4", file: file, size: int64(len(body)), seg: sg})
	r.pushPlaylist(s, false)
}

func (r *recording) pushPlaylist(s *stream, final bool) {
	r.m.q.push(&item{rec: r, key: r.base + s.uri, ctype: "application/vnd.apple.mpegurl", render: func() ([]byte, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return renderMedia(s.initName, s.segs, final)
	}})
}

func (r *recording) pushIndex(last bool) {
	r.m.q.push(&item{rec: r, key: r.base + "index.m3u8", ctype: "application/vnd.apple.mpegurl", last: last,
		render: func() ([]byte, error) { return renderIndex(r.mv) }})
}

// spool writes one file of the recording to its spool directory.
func (r *recording) spool(name string, b []byte) (string, error) {
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return "", fmt.Errorf("record: spool %s: %w", name, err)
	}
	return p, nil
}

// finish queues the VOD playlists and tells the recording finished.
func (r *recording) finish(why string) {
	for _, s := range r.streams {
		if s.initName != "" {
			r.pushPlaylist(s, true)
		}
	}
	r.pushIndex(true)
	r.mu.Lock()
	r.info.EndedAt = time.Now()
	info := r.info
	r.mu.Unlock()
	r.m.ended(r)
	r.log.Info("recording finished", "why", why, "segments", info.Segments, "dropped", info.Dropped,
		"duration", info.EndedAt.Sub(info.StartedAt).Round(time.Millisecond), "playlist", info.PlaylistURL)
	r.m.emit("recording_finished", info)
}

// segmentUploaded and segmentDropped record a segment's fate; the queue
// calls them.
func (r *recording) segmentUploaded(s *segment) {
	r.mu.Lock()
	s.state = segUploaded
	r.mu.Unlock()
}

func (r *recording) segmentDropped(s *segment) {
	r.mu.Lock()
	s.state = segDropped
	r.info.Dropped++
	r.mu.Unlock()
}
