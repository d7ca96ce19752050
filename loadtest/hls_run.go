package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"time"
)

// HLSConfig configures RunHLS.
type HLSConfig struct {
	// URL is the room's multivariant playlist,
	// http://host:port/hls/<room>/index.m3u8 (a signed URL's query
	// included; HLSURL makes it from a signalling URL).
	URL string
	// Viewers are started at Ramp per second (default 50) and, once all
	// are, watch for Hold.
	Viewers int
	Ramp    float64
	Hold    time.Duration
	// WaitFor bounds the wait for the room's playlist before the first
	// viewer (its broadcast and muxer starting), and each viewer's wait
	// for its first playlist and for its first part; default 30 s.
	WaitFor time.Duration
	// Server, when set, is measured: CPU and memory per HLS viewer.
	Server ServerProbe
}

// HLSURL is the LL-HLS playlist of room on the node whose signalling
// WebSocket URL is wsURL (ws://host:port/ws, or wss://).
func HLSURL(wsURL, room string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", fmt.Errorf("loadtest: signalling URL %q: %w", wsURL, err)
	}
	switch u.Scheme {
	case "ws", "http":
		u.Scheme = "http"
	case "wss", "https":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("loadtest: signalling URL %q: want ws:// or wss://", wsURL)
	}
	u.Path, u.RawQuery, u.Fragment = "/hls/"+url.PathEscape(room)+"/index.m3u8", "", ""
	return u.String(), nil
}

// RunHLS plays cfg.URL with cfg.Viewers HLS viewers (see hlsViewer): it
// waits for the playlist, starts them on the ramp, holds, stops them and
// reports. Viewers that fail are counted, not returned: it returns an error
// for a configuration it cannot run, a playlist that never answered, or
// ctx's error (with the report so far) when ctx ends before the hold does.
func RunHLS(ctx context.Context, cfg HLSConfig) (*HLSReport, error) {
	if cfg.Ramp <= 0 {
		cfg.Ramp = 50
	}
	if cfg.WaitFor <= 0 {
		cfg.WaitFor = 30 * time.Second
	}
	index, err := url.Parse(cfg.URL)
	if err != nil || (index.Scheme != "http" && index.Scheme != "https") || index.Host == "" {
		return nil, fmt.Errorf("loadtest: HLS URL %q: want http(s)://host/hls/<room>/index.m3u8", cfg.URL)
	}
	if cfg.Viewers < 1 || cfg.Hold < 0 {
		return nil, fmt.Errorf("loadtest: HLS viewers %d, hold %v: want at least one viewer and a hold >= 0", cfg.Viewers, cfg.Hold)
	}
	// A viewer holds two blocking playlist requests and fetches two parts
	// at a time at most: keep that many connections open per viewer.
	tr := &http.Transport{Proxy: nil, MaxIdleConns: 0, MaxIdleConnsPerHost: 4 * cfg.Viewers, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true, ResponseHeaderTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	sh := &hlsShared{client: &http.Client{Transport: tr}}
	rep := &HLSReport{URL: cfg.URL, Planned: cfg.Viewers}

	probe := &hlsViewer{sh: sh, index: index}
	pctx, cancel := context.WithTimeout(ctx, cfg.WaitFor)
	_, err = probe.multivariant(pctx, cfg.WaitFor)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("loadtest: the HLS playlist %s did not answer within %v: %w", cfg.URL, cfg.WaitFor, err)
	}

	var base, aud, end serverSample
	if cfg.Server.enabled() {
		base, _ = cfg.Server.sample(ctx)
	}
	rss0, gor0 := selfRSSKiB(), runtime.NumGoroutine()

	vctx, stop := context.WithCancel(ctx)
	defer stop()
	viewers := make([]*hlsViewer, cfg.Viewers)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range viewers {
		due := begin.Add(time.Duration(float64(i) / cfg.Ramp * float64(time.Second)))
		if !sleepUntil(ctx, due) {
			break
		}
		v := &hlsViewer{sh: sh, index: index}
		viewers[i] = v
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.run(vctx, cfg.WaitFor)
		}()
	}
	// The audience is in place once every viewer has its first part (or
	// failed), within WaitFor.
	settle := time.Now().Add(cfg.WaitFor)
	for ctx.Err() == nil && time.Now().Before(settle) && !hlsSettled(viewers) {
		sleepUntil(ctx, time.Now().Add(100*time.Millisecond))
	}
	audience := hlsPlaying(viewers)
	if cfg.Server.enabled() {
		aud, _ = cfg.Server.sample(ctx)
	}
	self1, rss1, gor1 := selfCPU(), selfRSSKiB(), runtime.NumGoroutine()
	bytes1, media1 := hlsBytes(viewers)
	holdStart := time.Now()
	sleepUntil(ctx, holdStart.Add(cfg.Hold))
	if cfg.Server.enabled() {
		end, _ = cfg.Server.sample(context.Background())
	}
	self2 := selfCPU()
	bytes2, media2 := hlsBytes(viewers)
	hold := time.Since(holdStart)
	stop()
	wg.Wait()

	rep.fill(viewers, sh)
	rep.HoldMS = msOf(hold)
	rep.AudienceAtHold = audience
	if audience > 0 && hold > 0 {
		rep.KbpsPerViewer = float64(bytes2-bytes1) * 8 / 1000 / hold.Seconds() / float64(audience)
		rep.MediaPercent = 100 * float64(media2-media1) / float64(hold) / float64(audience)
		cpu := self2.total() - self1.total()
		rep.LoadTester = HLSTesterCost{
			CPUSeconds:               cpu.Seconds(),
			CPUMillisPerViewerSecond: float64(cpu.Milliseconds()) / float64(audience) / hold.Seconds(),
			KiBPerViewer:             float64(rss1-rss0) / float64(audience),
			GoroutinesPerViewer:      float64(gor1-gor0) / float64(audience),
		}
		if cfg.Server.enabled() {
			rep.Server = hlsServerCost(base, aud, end, audience)
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// sleepUntil waits until t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func hlsSettled(vs []*hlsViewer) bool {
	for _, v := range vs {
		if v != nil && v.firstPart.Load() == 0 && v.failed.Load() == nil {
			return false
		}
	}
	return true
}

func hlsPlaying(vs []*hlsViewer) int {
	n := 0
	for _, v := range vs {
		if v != nil && v.firstPart.Load() > 0 && v.failed.Load() == nil {
			n++
		}
	}
	return n
}

// hlsBytes adds up the viewers' bytes and the video media they received.
func hlsBytes(vs []*hlsViewer) (bytes uint64, media time.Duration) {
	for _, v := range vs {
		if v != nil {
			bytes += v.bytes.Load()
			media += time.Duration(v.mediaNs.Load())
		}
	}
	return bytes, media
}

// hlsServerCost is the server's CPU over the hold (the audience in place:
// its blocking requests, parts and playlists, nothing of the ramp) and its
// memory and goroutines from before the first viewer (the room's muxer
// already running) to the audience.
func hlsServerCost(base, aud, end serverSample, audience int) *HLSServerCost {
	c := &HLSServerCost{}
	if aud.hasProc && end.hasProc {
		cpu := end.cpu.total() - aud.cpu.total()
		wall := end.at.Sub(aud.at)
		c.CPUSeconds = cpu.Seconds()
		if wall > 0 {
			c.Cores = cpu.Seconds() / wall.Seconds()
			c.CPUMillisPerViewerSecond = float64(cpu.Microseconds()) / 1000 / float64(audience) / wall.Seconds()
		}
	}
	if base.hasProc && aud.hasProc {
		c.RSSBaselineKiB, c.RSSAudienceKiB = base.rssKiB, aud.rssKiB
		c.KiBPerViewer = float64(aud.rssKiB-base.rssKiB) / float64(audience)
	}
	if base.goroutines >= 0 && aud.goroutines >= 0 {
		c.GoroutinesBaseline, c.GoroutinesAudience = int(base.goroutines), int(aud.goroutines)
		c.GoroutinesPerViewer = (aud.goroutines - base.goroutines) / float64(audience)
	}
	return c
}

// fill counts the viewers' outcomes and adds up their figures.
func (r *HLSReport) fill(vs []*hlsViewer, sh *hlsShared) {
	var firsts []float64
	for _, v := range vs {
		if v == nil {
			r.NotStarted++
			continue
		}
		if f := v.failed.Load(); f != nil {
			r.Failed++
			if r.FailedByCode == nil {
				r.FailedByCode = map[string]int{}
			}
			r.FailedByCode[f.code]++
		} else if v.firstPart.Load() > 0 {
			r.Playing++
		} else {
			r.Failed++
			if r.FailedByCode == nil {
				r.FailedByCode = map[string]int{}
			}
			r.FailedByCode["no_media"]++
		}
		if fp := v.firstPart.Load(); fp > 0 {
			firsts = append(firsts, msOf(time.Duration(fp)))
		}
		r.Parts += v.parts.Load()
		r.Restarts += v.restarts.Load()
		r.Skips += v.behind.Load()
		r.Bytes += v.bytes.Load()
		if s := v.stalls.Load(); s > 0 {
			r.Stalls += s
			r.ViewersStalled++
		}
		r.StallMS += msOf(time.Duration(v.stallNs.Load()))
		r.MediaMS += msOf(time.Duration(v.mediaNs.Load()))
	}
	if r.MediaMS+r.StallMS > 0 {
		r.StallPercent = 100 * r.StallMS / (r.MediaMS + r.StallMS)
	}
	r.Requests = sh.requests.Load()
	r.FirstPartMS = dist(firsts)
	r.LatencyMS = histDist(&sh.latency)
	r.PDTLatencyMS = histDist(&sh.pdt)
	sh.errorsMu.Lock()
	r.Errors = append([]string(nil), sh.errs...)
	sh.errorsMu.Unlock()
}

// histDist is the distribution a histogram holds, in milliseconds.
func histDist(h *histogram) Dist {
	n := h.count()
	if n == 0 {
		return Dist{}
	}
	q := func(p float64) float64 { return msOf(h.quantile(p)) }
	return Dist{N: int(min(n, uint64(^uint(0)>>1))), Min: q(0), P1: q(0.01), P5: q(0.05), P50: q(0.5), P95: q(0.95), P99: q(0.99), Max: msOf(h.maxDuration())}
}
