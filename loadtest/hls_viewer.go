package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// An HLS viewer plays a room's LL-HLS as a low-latency player does: it reads
// index.m3u8, then follows the video playlist and the audio rendition each
// on its own goroutine from the live edge, asking for the next part with a
// blocking playlist request (_HLS_msn, _HLS_part) and fetching each part
// once the playlist lists it. It measures, on the video:
//   - latency: each frame's arrival (its part's) minus its send time, for
//     this package's H.264 publisher's frames; and each part's arrival minus
//     its PROGRAM-DATE-TIME (any encoder);
//   - stalls: a part that arrives after it was due, for a player holding
//     PART-HOLD-BACK of media (3 part targets when the playlist gives
//     none): each part is due when the media before it has played;
//   - bytes of playlists, init segments and parts (video and audio).

// hlsShared is what every HLS viewer of a run adds to.
type hlsShared struct {
	client *http.Client
	// latency: per frame, from the embedded send time; pdt: per part, from
	// its PROGRAM-DATE-TIME.
	latency, pdt histogram
	requests     atomic.Uint64
	errorsMu     sync.Mutex
	errs         []string // the first few, for a human
}

func (s *hlsShared) noteError(err error) {
	s.errorsMu.Lock()
	defer s.errorsMu.Unlock()
	if len(s.errs) < 10 {
		s.errs = append(s.errs, err.Error())
	}
}

// hlsViewer is one player. Its counters are read while it runs.
type hlsViewer struct {
	sh    *hlsShared
	index *url.URL
	start time.Time

	firstPart atomic.Int64 // ns from start to its first video part; 0 before
	restarts  atomic.Uint64
	behind    atomic.Uint64 // jumps to the live edge after falling out of the playlist
	pb        hlsPlayback   // the video goroutine's
	parts     atomic.Uint64
	bytes     atomic.Uint64
	stalls    atomic.Uint64
	stallNs   atomic.Int64
	mediaNs   atomic.Int64 // video media received
	failed    atomic.Pointer[hlsFailure]
}

// hlsPlayback is a player's clock: it starts with the first video part and
// plays the media received, holding holdBack of it; a part that arrives
// after the media before it has played is a stall.
type hlsPlayback struct {
	start          time.Time
	holdBack       time.Duration
	media, stalled time.Duration
}

// hlsFailure is why a viewer stopped before the end, with a code for the
// report (http_<status>, hls_<code> of the node's answer, timeout, error).
type hlsFailure struct {
	code string
	err  error
}

// errHLSStatus is an answer other than 200.
type errHLSStatus struct {
	status int
	code   string // the node's "code: message" code, when it gave one
	body   string
	after  time.Duration
}

func (e *errHLSStatus) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.status, e.body)
}

// run plays until ctx ends; waitFor bounds its wait for a playlist (a
// muxer starting, a broadcast not up yet). A viewer that played and then
// met an error (a muxer that stopped, a node draining) starts again from
// index.m3u8, as players do, on the same playback clock: the time without
// media counts as a stall.
func (v *hlsViewer) run(ctx context.Context, waitFor time.Duration) {
	v.start = time.Now()
	defer v.endStall()
	for {
		err := v.play(ctx, waitFor)
		if ctx.Err() != nil {
			return
		}
		if v.firstPart.Load() == 0 {
			v.fail(ctx, err)
			return
		}
		v.restarts.Add(1)
		v.sh.noteError(fmt.Errorf("restarted from index.m3u8 after: %w", err))
		if !sleepUntil(ctx, time.Now().Add(500*time.Millisecond)) {
			return
		}
	}
}

// play reads index.m3u8 and follows its renditions until one fails.
func (v *hlsViewer) play(ctx context.Context, waitFor time.Duration) error {
	mv, err := v.multivariant(ctx, waitFor)
	if err != nil {
		return err
	}
	video, err := v.index.Parse(mv.Video)
	if err != nil {
		return fmt.Errorf("video playlist URI %q: %w", mv.Video, err)
	}
	// The first rendition that fails stops the other.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var audioErr error
	if mv.Audio != "" {
		if audio, err := v.index.Parse(mv.Audio); err == nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if audioErr = v.follow(ctx, audio, false); audioErr != nil {
					cancel()
				}
			}()
		}
	}
	err = v.follow(ctx, video, true)
	cancel()
	wg.Wait()
	if audioErr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = audioErr // the video stopped for the audio's failure
	}
	if err == nil {
		err = errors.New("playback stopped")
	}
	return err
}

// endStall counts the stall of a viewer still waiting for media when the
// run ends.
func (v *hlsViewer) endStall() {
	p := &v.pb
	if p.start.IsZero() {
		return
	}
	if due := p.start.Add(p.holdBack + p.media + p.stalled); time.Now().After(due) {
		v.stalls.Add(1)
		v.stallNs.Store(int64(p.stalled + time.Since(due)))
	}
}

func (v *hlsViewer) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // the run ended: not a failure
	}
	f := &hlsFailure{code: "error", err: err}
	var st *errHLSStatus
	switch {
	case errors.As(err, &st) && st.code != "":
		f.code = st.code
	case errors.As(err, &st):
		f.code = "http_" + strconv.Itoa(st.status)
	case errors.Is(err, context.DeadlineExceeded):
		f.code = "timeout"
	}
	if v.failed.CompareAndSwap(nil, f) {
		v.sh.noteError(err)
	}
}

// multivariant reads index.m3u8, asking again while the node says the
// room's HLS is starting or not there yet, for up to waitFor.
func (v *hlsViewer) multivariant(ctx context.Context, waitFor time.Duration) (hlsMultivariant, error) {
	deadline := time.Now().Add(waitFor)
	for {
		body, err := v.get(ctx, v.index, nil)
		if err == nil {
			return parseHLSMultivariant(string(body))
		}
		var st *errHLSStatus
		wait := 500 * time.Millisecond
		if errors.As(err, &st) {
			wait = max(st.after, wait)
		}
		if !errors.As(err, &st) || (st.status != http.StatusNotFound && st.status != http.StatusServiceUnavailable) || time.Now().Add(wait).After(deadline) {
			return hlsMultivariant{}, err
		}
		select {
		case <-ctx.Done():
			return hlsMultivariant{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// follow plays one media playlist from its live edge until ctx ends.
func (v *hlsViewer) follow(ctx context.Context, u *url.URL, measure bool) error {
	// One buffer per rendition for every body it reads: a viewer's memory
	// stays at its largest part.
	buf := new(bytes.Buffer)
	m, err := v.media(ctx, u, nil, buf)
	if err != nil {
		return err
	}
	if m.Map != "" {
		if _, err := v.fetch(ctx, u, m.Map, buf); err != nil {
			return fmt.Errorf("init segment: %w", err)
		}
	}
	pb := &v.pb
	if measure {
		pb.holdBack = m.PartHoldBack
		if pb.holdBack <= 0 {
			pb.holdBack = 3 * m.PartTarget
		}
	}
	for len(m.Parts) == 0 {
		want := [2]uint64{m.MediaSequence + uint64(m.Complete), 0}
		if m, err = v.media(ctx, u, &want, buf); err != nil {
			return err
		}
	}
	cur := m.Parts[len(m.Parts)-1] // the live edge
	got := func(p hlsPart, body []byte, at time.Time) {
		if !measure {
			return
		}
		if pb.start.IsZero() {
			pb.start = at
			v.firstPart.Store(int64(at.Sub(v.start)))
		} else if due := pb.start.Add(pb.holdBack + pb.media + pb.stalled); at.After(due) {
			// The player ran out of media before this part came.
			v.stalls.Add(1)
			pb.stalled += at.Sub(due)
			v.stallNs.Store(int64(pb.stalled))
		}
		pb.media += p.Duration
		v.mediaNs.Store(int64(pb.media))
		v.parts.Add(1)
		if !p.Start.IsZero() {
			v.sh.pdt.record(at.Sub(p.Start))
		}
		hlsSendTimes(body, func(sent int64) {
			if plausibleSendTime(sent, at) {
				v.sh.latency.record(at.Sub(time.Unix(0, sent)))
			}
		})
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		if !cur.Gap {
			body, err := v.fetch(ctx, u, cur.URI, buf)
			if err != nil {
				return fmt.Errorf("part %s: %w", cur.URI, err)
			}
			got(cur, body, time.Now())
		}
		for {
			next, found, want, behind := m.nextAfter(cur.MSN, cur.Index)
			if found {
				cur = next
				break
			}
			if behind { // the playlist moved past us: go to its live edge
				v.behind.Add(1)
				cur = m.Parts[len(m.Parts)-1]
				break
			}
			m, err = v.media(ctx, u, &want, buf)
			var st *errHLSStatus
			if errors.As(err, &st) && st.status == http.StatusBadRequest {
				// The part asked for left the playlist's window (400): the
				// viewer fell that far behind. Go on from the live edge.
				if m, err = v.media(ctx, u, nil, buf); err == nil && len(m.Parts) > 0 {
					v.behind.Add(1)
					cur = m.Parts[len(m.Parts)-1]
					break
				}
			}
			if err != nil {
				return err
			}
		}
	}
}

// media reads a media playlist; with want, a blocking request for that
// part (_HLS_msn, _HLS_part), which the node answers once it exists.
func (v *hlsViewer) media(ctx context.Context, u *url.URL, want *[2]uint64, buf *bytes.Buffer) (*hlsMedia, error) {
	r := *u
	if want != nil {
		q := r.Query()
		q.Set("_HLS_msn", strconv.FormatUint(want[0], 10))
		q.Set("_HLS_part", strconv.FormatUint(want[1], 10))
		r.RawQuery = q.Encode()
	}
	body, err := v.get(ctx, &r, buf)
	if err != nil {
		return nil, err
	}
	m, err := parseHLSMedia(string(body))
	if err != nil {
		return nil, fmt.Errorf("media playlist %s: %w", u.Path, err)
	}
	if m.End {
		return nil, errors.New("the playlist ended (EXT-X-ENDLIST)")
	}
	return m, nil
}

// fetch reads uri relative to the playlist at base into buf.
func (v *hlsViewer) fetch(ctx context.Context, base *url.URL, uri string, buf *bytes.Buffer) ([]byte, error) {
	u, err := base.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("URI %q: %w", uri, err)
	}
	return v.get(ctx, u, buf)
}

// hlsMaxBody bounds a part, segment or playlist the viewer reads.
const hlsMaxBody = 64 << 20

// get reads u into buf (nil: a new one) and returns its bytes, valid until
// buf's next use; an answer other than 200 is an *errHLSStatus.
func (v *hlsViewer) get(ctx context.Context, u *url.URL, buf *bytes.Buffer) ([]byte, error) {
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	v.sh.requests.Add(1)
	resp, err := v.sh.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, hlsMaxBody))
	v.bytes.Add(uint64(n))
	body := buf.Bytes()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		e := &errHLSStatus{status: resp.StatusCode, body: strings.TrimSpace(string(body))}
		if len(e.body) > 200 {
			e.body = e.body[:200]
		}
		if c, _, ok := strings.Cut(e.body, ":"); ok && strings.HasPrefix(c, "hls_") && !strings.ContainsAny(c, " \n") {
			e.code = c
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.after = time.Duration(s) * time.Second
		}
		return nil, e
	}
	return body, nil
}
