package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// sampleReport is a report with known figures: five viewers, three with
// loss, two with freezes, one that failed, a timeline and frame latencies.
func sampleReport() *Report {
	r := &Report{Schema: ReportSchema, Scenario: "html test", Target: "websocket", URL: "ws://127.0.0.1:7880/ws",
		StartedAt: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), ElapsedMS: 5000}
	lossRaw := []float64{0, 1, 2, 3, 0}
	loss := []float64{0, 0.5, 1, 2, 0}
	freeze := []float64{0, 600, 0, 1200, 0}
	for i := range 5 {
		r.PerViewer = append(r.PerViewer, ViewerRecord{
			Identity: "v" + string(rune('0'+i)), Room: "demo", PlannedStartMS: float64(i * 100), StartMS: float64(i * 100),
			Outcome: OutcomeConnected, JoinMS: float64(10 + 5*i), FirstPacketMS: float64(20 + 5*i), FirstKeyframeMS: float64(30 + 5*i),
			Packets: 1000, VideoPackets: 800, AudioPackets: 200, LostRaw: uint64(lossRaw[i] * 10), Lost: uint64(loss[i] * 10),
			LossRawPercent: lossRaw[i], LossPercent: loss[i], BitrateKbps: 2500, FreezeMS: freeze[i], Freezes: uint64(freeze[i] / 600),
		})
	}
	r.PerViewer = append(r.PerViewer, ViewerRecord{Identity: "v5", Room: "demo", Outcome: OutcomeFailed, ErrorCode: "room_full", Error: "room_full: full"})
	l := &Latency{}
	for i := range 200 {
		l.counts[histIndex(uint64(1000+i*50))]++
		l.total++
	}
	r.LatencyBuckets = l.buckets()
	for i := range 6 {
		r.Timeline = append(r.Timeline, Sample{TMS: float64(i * 1000), Connected: min(i, 5), Failed: min(i/5, 1), Kbps: float64(2500 * min(i, 5)), PacketsPerSecond: 100})
	}
	r.aggregate()
	return r
}

func TestReport_HTMLPlotsRenderInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s is missing (make deps installs it); CI fails here instead", chromiumPath)
		}
		t.Fatalf("%s is missing in CI: %v", chromiumPath, err)
	}
	var page bytes.Buffer
	if err := sampleReport().WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"<script", "http://", "https://"} {
		// The page is self-contained (the target URL is ws://).
		if strings.Contains(page.String(), banned) && banned != "http://" {
			t.Fatalf("page holds %q", banned)
		}
	}
	if strings.Contains(strings.ReplaceAll(page.String(), `xmlns="http://www.w3.org/2000/svg"`, ""), "http://") {
		t.Fatal("page refers to an external resource")
	}
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1500, 1400))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx)
		cancel()
	}()
	runCtx, runCancel := context.WithTimeout(ctx, 60*time.Second)
	defer runCancel()

	type plot struct {
		ID     string  `json:"id"`
		Width  float64 `json:"width"`
		Height float64 `json:"height"`
		Marks  int     `json:"marks"`
		Bars   int     `json:"bars"`
	}
	var plots []plot
	if _, err := chromedp.Run(runCtx, chromedp.Navigate("file://"+file)); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if _, err := chromedp.Run(runCtx, chromedp.WaitVisible("svg.plot")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	raw, err := chromedp.Run(runCtx, chromedp.Evaluate[[]byte](`[...document.querySelectorAll('svg.plot')].map(s => {
			const r = s.getBoundingClientRect();
			const marks = [...s.querySelectorAll('polyline.line, rect.bar')].filter(e => {
				const b = e.getBBox(); return b.width > 0 || b.height > 0; });
			return {id: s.id, width: r.width, height: r.height, marks: marks.length,
				bars: s.querySelectorAll('rect.bar').length};
		})`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if err := json.Unmarshal(raw, &plots); err != nil {
		t.Fatal(err)
	}
	// The plots use the page's width: each row of plots spans the width
	// of their container (a window of 1500 px: two plots a row), and a
	// plot keeps its proportions.
	raw, err = chromedp.Run(runCtx, chromedp.Evaluate[[]byte](`(() => {
			const c = document.querySelector('.plots').getBoundingClientRect();
			const rows = {};
			for (const s of document.querySelectorAll('svg.plot')) {
				const r = s.getBoundingClientRect();
				const row = rows[Math.round(r.top)] || (rows[Math.round(r.top)] = {left: r.left, right: r.right, n: 0, ratio: r.width / r.height});
				row.left = Math.min(row.left, r.left); row.right = Math.max(row.right, r.right); row.n++;
			}
			return {container: c.width, left: c.left, rows: Object.values(rows), body: document.body.clientWidth};
		})()`))
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	var layout struct {
		Container, Left, Body float64
		Rows                  []struct {
			Left, Right, Ratio float64
			N                  int
		}
	}
	if err := json.Unmarshal(raw, &layout); err != nil {
		t.Fatal(err)
	}
	t.Logf("layout %+v", layout)
	if layout.Container < 0.95*layout.Body || len(layout.Rows) == 0 {
		t.Fatalf("plots %.0f px wide in a page of %.0f px", layout.Container, layout.Body)
	}
	for _, row := range layout.Rows {
		if row.Left-layout.Left > 2 || layout.Left+layout.Container-row.Right > 2 || row.N < 2 {
			t.Errorf("a row of %d plots spans %.0f..%.0f px of %.0f..%.0f", row.N, row.Left, row.Right, layout.Left, layout.Left+layout.Container)
		}
		if want := float64(plotW) / plotH; math.Abs(row.Ratio-want) > 0.05*want {
			t.Errorf("plot proportions %.2f, drawn for %.2f", row.Ratio, want)
		}
	}
	shot, err := chromedp.Run(runCtx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	want := map[string]int{ // marks each plot must draw
		"plot-connected":      2, // connected and failed lines
		"plot-throughput":     1,
		"plot-latency-cdf":    1,
		"plot-join-histogram": 5, // five joins, 5 ms apart, in 20 bins: five non-empty bins
		"plot-loss":           6, // three viewers with raw loss, three after repair
		"plot-freezes":        2,
	}
	if len(plots) != len(want) {
		t.Fatalf("%d plots rendered, want %d: %+v", len(plots), len(want), plots)
	}
	for _, p := range plots {
		if p.Width <= 0 || p.Height <= 0 {
			t.Errorf("%s has no size: %+v", p.ID, p)
		}
		if p.Marks != want[p.ID] {
			t.Errorf("%s draws %d visible marks, want %d", p.ID, p.Marks, want[p.ID])
		}
	}
	if len(shot) < 10_000 {
		t.Fatalf("screenshot of %d bytes", len(shot))
	}
	dir := filepath.Join("..", "build", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "loadtest-report.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A report of thousands of viewers stays a page of bounded size: per-viewer
// plots draw one bar per group, the group's worst.
func TestReport_HTMLGroupsViewersOfLargeRuns(t *testing.T) {
	r := &Report{Schema: ReportSchema, Target: "websocket"}
	for i := range 5000 {
		loss := 0.0
		if i == 4321 {
			loss = 7
		}
		r.PerViewer = append(r.PerViewer, ViewerRecord{Identity: strconv.Itoa(i), Outcome: OutcomeConnected, Packets: 100, LossPercent: loss, LossRawPercent: loss})
	}
	r.aggregate()
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	lossPlot := page.String()[strings.Index(page.String(), `id="plot-loss"`):]
	lossPlot = lossPlot[:strings.Index(lossPlot, "</svg>")]
	if n := strings.Count(lossPlot, `class="bar"`); n != 2 {
		t.Fatalf("%d bars, want the one worst group in raw and after repair", n)
	}
	if !strings.Contains(page.String(), "the worst of 10") || page.Len() > 200_000 {
		t.Fatalf("page of %d bytes without grouping", page.Len())
	}
}

// The page opens with the verdict, each reason of a failure spelled out,
// and states the frames received of those sent, as the text report does.
func TestReport_HTMLOpensWithVerdictAndFrames(t *testing.T) {
	r := sampleReport()
	var healthy []ViewerRecord // the connected ones
	for _, v := range r.PerViewer {
		if v.Outcome == OutcomeConnected {
			v.FramesSent, v.FramesReceived = 100, uint64(100-10*len(healthy))
			healthy = append(healthy, v)
		}
	}
	r.PerViewer = append(slices.Clone(healthy), ViewerRecord{Identity: "v5", Room: "demo", Outcome: OutcomeFailed, ErrorCode: "room_full", Error: "room_full: full"})
	r.aggregate()
	if err := r.Check(DefaultLimits()); err == nil {
		t.Fatal("a run of 80 % frames received passed")
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	s := page.String()
	verdict, title, firstPlot := strings.Index(s, `id="verdict"`), strings.Index(s, "<h1>"), strings.Index(s, "<svg")
	if verdict < 0 || verdict > title || verdict > firstPlot {
		t.Fatalf("verdict at %d, title at %d, first plot at %d", verdict, title, firstPlot)
	}
	if !strings.Contains(s, `class="verdict fail">FAIL`) {
		t.Fatal("a failed run is not marked FAIL")
	}
	for _, reason := range r.Failures {
		if !strings.Contains(s[verdict:title], "<li>"+reason+"</li>") {
			t.Errorf("reason %q missing from the verdict", reason)
		}
	}
	if !strings.Contains(s, "viewers received 400 of 500 frames sent (80.0%)") {
		t.Error("the frames reason is not the one of the text report")
	}
	if !strings.Contains(s, "Frames received of sent while the viewers watched: 400 of 500 (80.00 %); worst viewer 60.0 %.") {
		t.Error("no frames received of sent line")
	}

	for i := range healthy {
		healthy[i].FramesReceived = 100
	}
	r.PerViewer = slices.Clone(healthy) // no failed viewer
	r.aggregate()
	if err := r.Check(DefaultLimits()); err != nil {
		t.Fatalf("a healthy run: %v", err)
	}
	page.Reset()
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if s := page.String(); !strings.Contains(s, `<p id="verdict" class="verdict pass">PASS</p>`) || strings.Index(s, `id="verdict"`) > strings.Index(s, "<h1>") {
		t.Fatal("a passing run does not open with PASS")
	}
}

// The latency CDF's x axis is logarithmic with round ticks: from the round
// value at or below the fastest frame to the one at or above the slowest,
// each tick as far from the next as its value's ratio says.
func TestReport_HTMLLatencyCDFHasALogAxisWithRoundTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{
		{1.2, 480, "1 2 5 10 20 50 100 200 500"},
		{0.3, 4, "0.2 0.5 1 2 5"},
		{10, 10, "10"},
		{1000, 11000, "1000 2000 5000 10000 20000"},
		{0.05, 9000, "0.01 0.1 1 10 100 1000 10000"}, // too many round values: decades
	} {
		var got []string
		for _, v := range logTicks(c.lo, c.hi) {
			got = append(got, tick(v))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("ticks %v..%v: %q, want %q", c.lo, c.hi, strings.Join(got, " "), c.want)
		}
	}

	r := &Report{Schema: ReportSchema, Target: "websocket"}
	l := &Latency{}
	for _, ms := range []int{3, 8, 40, 90, 300, 2500} { // 3 ms to 2.5 s
		l.counts[histIndex(uint64(ms*1000))]++
		l.total++
	}
	r.LatencyBuckets = l.buckets()
	r.aggregate()
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	plot := page.String()[strings.Index(page.String(), `id="plot-latency-cdf"`):]
	plot = plot[:strings.Index(plot, "</svg>")]
	if !strings.Contains(plot, "log scale") {
		t.Error("the axis does not say it is logarithmic")
	}
	ticks := regexp.MustCompile(`class="xtick" x="([0-9.]+)"[^>]*>([^<]+)<`).FindAllStringSubmatch(plot, -1)
	var labels []string
	pos := map[string]float64{}
	for _, m := range ticks {
		labels = append(labels, m[2])
		pos[m[2]], _ = strconv.ParseFloat(m[1], 64)
	}
	if got := strings.Join(labels, " "); got != "2 5 10 20 50 100 200 500 1000 2000 5000" {
		t.Fatalf("ticks %q", got)
	}
	for _, p := range [][2]string{{"2", "20"}, {"10", "100"}, {"100", "1000"}, {"500", "5000"}} {
		if d := pos[p[1]] - pos[p[0]]; math.Abs(d-pos["20"]+pos["2"]) > 0.2 || d <= 0 {
			t.Errorf("%s to %s spans %.1f px, 2 to 20 %.1f px: not a log axis", p[0], p[1], d, pos["20"]-pos["2"])
		}
	}
	if d1, d2 := pos["5"]-pos["2"], pos["50"]-pos["20"]; math.Abs(d1-d2) > 0.2 {
		t.Errorf("2 to 5 spans %.1f px, 20 to 50 %.1f px", d1, d2)
	}
}
