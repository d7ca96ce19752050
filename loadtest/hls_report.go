package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// HLSReport is what the HLS viewers of a run (RunHLS, halo-loadtest
// --hls) measured; it sits in Report.HLS beside the WebRTC viewers'
// figures. Times are milliseconds.
type HLSReport struct {
	URL string `json:"url"`
	// Planned viewers are each exactly one of Playing (had a video part and
	// did not fail), Failed (FailedByCode: hls_<code> of the node's
	// answer, http_<status>, timeout, no_media, error) or NotStarted (the
	// run ended first).
	Planned      int            `json:"planned"`
	Playing      int            `json:"playing"`
	Failed       int            `json:"failed"`
	NotStarted   int            `json:"not_started,omitempty"`
	FailedByCode map[string]int `json:"failed_by_code,omitempty"`
	Errors       []string       `json:"errors,omitempty"`
	// Restarts counts viewers going back to index.m3u8 after an error
	// while playing (a muxer that stopped, a node draining), as players do.
	Restarts uint64 `json:"restarts,omitempty"`
	// Skips counts viewers that fell so far behind that the part they
	// wanted had left the playlist, and went on from its live edge.
	Skips uint64 `json:"skips,omitempty"`
	// AudienceAtHold is how many played when the hold began; HoldMS its
	// length.
	AudienceAtHold int     `json:"audience_at_hold"`
	HoldMS         float64 `json:"hold_ms"`
	// Requests and Bytes: every HTTP request and body byte (playlists,
	// init segments, parts; video and audio) of the whole run;
	// KbpsPerViewer is the bytes per playing viewer over the hold.
	Requests      uint64  `json:"requests"`
	Bytes         uint64  `json:"bytes"`
	KbpsPerViewer float64 `json:"kbps_per_viewer"`
	// Parts counts the video parts received; MediaMS their media
	// duration; MediaPercent the media received over the hold per viewer,
	// in percent of the hold (100: real time).
	Parts        uint64  `json:"parts"`
	MediaMS      float64 `json:"media_ms"`
	MediaPercent float64 `json:"media_percent"`
	// Stalls counts video parts that came after a player holding
	// PART-HOLD-BACK of media had played all it had; StallMS the time
	// spent waiting, StallPercent its share of the watch time;
	// ViewersStalled the viewers that stalled at least once.
	Stalls         uint64  `json:"stalls"`
	StallMS        float64 `json:"stall_ms"`
	StallPercent   float64 `json:"stall_percent"`
	ViewersStalled int     `json:"viewers_stalled"`
	// FirstPartMS: from a viewer's start to its first video part.
	FirstPartMS Dist `json:"first_part_ms"`
	// LatencyMS: per frame, its part's arrival minus the frame's send time
	// (this package's H.264 publisher embeds it; N 0 for other encoders).
	// PDTLatencyMS: per part, its arrival minus its wall-clock start from
	// the playlist's PROGRAM-DATE-TIME (the node stamps a segment with its
	// first frame's arrival there). A player showing a part as soon as it
	// arrives is that far behind; one holding PART-HOLD-BACK, that more.
	LatencyMS    Dist `json:"latency_ms"`
	PDTLatencyMS Dist `json:"pdt_latency_ms"`

	Server     *HLSServerCost `json:"server,omitempty"`
	LoadTester HLSTesterCost  `json:"load_tester"`
}

// HLSServerCost is what the server paid for its HLS viewers (--server-pid,
// --metrics-url): CPU over the hold, memory and goroutines from before the
// first HLS viewer (the room's muxer already running) to the audience.
type HLSServerCost struct {
	CPUSeconds               float64 `json:"cpu_seconds"`
	Cores                    float64 `json:"cores"`
	CPUMillisPerViewerSecond float64 `json:"cpu_ms_per_viewer_second"`
	RSSBaselineKiB           int64   `json:"rss_baseline_kib,omitempty"`
	RSSAudienceKiB           int64   `json:"rss_audience_kib,omitempty"`
	KiBPerViewer             float64 `json:"kib_per_viewer"`
	GoroutinesBaseline       int     `json:"goroutines_baseline,omitempty"`
	GoroutinesAudience       int     `json:"goroutines_audience,omitempty"`
	GoroutinesPerViewer      float64 `json:"goroutines_per_viewer"`
}

// HLSTesterCost is what the load tester paid for its HLS viewers: CPU over
// the hold, memory and goroutines added per viewer.
type HLSTesterCost struct {
	CPUSeconds               float64 `json:"cpu_seconds"`
	CPUMillisPerViewerSecond float64 `json:"cpu_ms_per_viewer_second"`
	KiBPerViewer             float64 `json:"kib_per_viewer"`
	GoroutinesPerViewer      float64 `json:"goroutines_per_viewer"`
}

// WriteText writes the HLS viewers' section of the text report.
func (r *HLSReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nHLS viewers (%s)\n", r.URL)
	fmt.Fprintf(&b, "  viewers     %d planned, %d playing, %d failed", r.Planned, r.Playing, r.Failed)
	if r.NotStarted > 0 {
		fmt.Fprintf(&b, ", %d not started", r.NotStarted)
	}
	b.WriteString("\n")
	if len(r.FailedByCode) > 0 {
		codes := make([]string, 0, len(r.FailedByCode))
		for c := range r.FailedByCode {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		b.WriteString("  failed by   ")
		for i, c := range codes {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", c, r.FailedByCode[c])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  received    %d requests, %s, %d video parts; %.0f kbit/s per viewer over the %s hold, media %.1f %% of real time\n",
		r.Requests, formatBytes(r.Bytes), r.Parts, r.KbpsPerViewer, fmtMS(r.HoldMS), r.MediaPercent)
	fmt.Fprintf(&b, "  stalls      %d (%d viewers), %s waiting, %.2f %% of the watch time; %d skips to the live edge, %d restarts from index.m3u8\n",
		r.Stalls, r.ViewersStalled, fmtMS(r.StallMS), r.StallPercent, r.Skips, r.Restarts)
	hlsDistLine(&b, "first part", r.FirstPartMS)
	hlsDistLine(&b, "latency", r.LatencyMS)
	hlsDistLine(&b, "latency PDT", r.PDTLatencyMS)
	if s := r.Server; s != nil {
		fmt.Fprintf(&b, "  server      %.3f ms CPU per viewer-second (%.2f cores for %d viewers), %.1f KiB and %.2f goroutines per viewer\n",
			s.CPUMillisPerViewerSecond, s.Cores, r.AudienceAtHold, s.KiBPerViewer, s.GoroutinesPerViewer)
	}
	lt := r.LoadTester
	fmt.Fprintf(&b, "  load tester %.3f ms CPU per viewer-second, %.1f KiB and %.2f goroutines per viewer\n",
		lt.CPUMillisPerViewerSecond, lt.KiBPerViewer, lt.GoroutinesPerViewer)
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  error       %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func hlsDistLine(b *strings.Builder, name string, d Dist) {
	if d.N == 0 {
		fmt.Fprintf(b, "  %-11s -\n", name)
		return
	}
	fmt.Fprintf(b, "  %-11s p50 %s, p95 %s, p99 %s, max %s (n=%d)\n", name, fmtMS(d.P50), fmtMS(d.P95), fmtMS(d.P99), fmtMS(d.Max), d.N)
}
