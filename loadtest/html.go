package loadtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// WriteHTML writes the report as one self-contained HTML page: no script,
// no external resource, every plot an inline SVG (connected viewers and
// throughput over time, the latency CDF, a join-time histogram, loss and
// freezes per viewer), then the human table.
func (r *Report) WriteHTML(w io.Writer) error {
	var text strings.Builder
	_ = r.WriteText(&text)
	m := r.Measures
	data := struct {
		R     *Report
		Title string
		Plots []template.HTML
		Text  string
		Rows  [][]string
	}{R: r, Text: text.String()}
	data.Title = "halo-loadtest report"
	if r.Scenario != "" {
		data.Title += ": " + r.Scenario
	}
	var tx, conn, mbps, failed []float64
	for _, s := range r.Timeline {
		tx = append(tx, s.TMS/1000)
		conn = append(conn, float64(s.Connected))
		failed = append(failed, float64(s.Failed))
		mbps = append(mbps, s.Kbps/1000)
	}
	var cx, cy []float64
	for _, p := range r.LatencyCDF {
		cx = append(cx, p.LatencyMS)
		cy = append(cy, p.Fraction)
	}
	var joins []float64
	var loss, lossRaw, freezeMS, idx []float64
	for i, v := range r.PerViewer {
		if v.Outcome == OutcomeConnected {
			joins = append(joins, v.JoinMS)
		}
		idx = append(idx, float64(i))
		loss = append(loss, v.LossPercent)
		lossRaw = append(lossRaw, v.LossRawPercent)
		freezeMS = append(freezeMS, v.FreezeMS)
	}
	hx, hy := histogramBins(joins, 20)
	perViewer := "viewer (in start order)"
	if len(idx) > maxBars {
		// One bar per group of viewers, the group's worst.
		group := (len(idx) + maxBars - 1) / maxBars
		idx, loss, lossRaw, freezeMS = groupMax(idx, group), groupMax(loss, group), groupMax(lossRaw, group), groupMax(freezeMS, group)
		for i := range idx {
			idx[i] = float64(i * group)
		}
		perViewer = fmt.Sprintf("viewer (in start order; each bar the worst of %d)", group)
	}
	data.Plots = []template.HTML{
		svgPlot("connected", "Viewers connected over time", "time (s)", "viewers",
			[]series{{name: "connected", x: tx, y: conn, color: "#1f77b4"}, {name: "failed", x: tx, y: failed, color: "#d62728"}}),
		svgPlot("throughput", "Throughput received over time", "time (s)", "Mbit/s",
			[]series{{name: "received", x: tx, y: mbps, color: "#2ca02c"}}),
		svgPlotAxes("latency-cdf", fmt.Sprintf("One-way latency CDF (p50 %.1f ms, p95 %.1f ms, p99 %.1f ms)", m.LatencyMS.P50, m.LatencyMS.P95, m.LatencyMS.P99),
			"latency (ms, log scale)", "share of frames", []series{{name: "frames", x: cx, y: cy, color: "#9467bd", step: true}}, true),
		svgPlot("join-histogram", fmt.Sprintf("Join time (p50 %.0f ms, p95 %.0f ms)", m.JoinMS.P50, m.JoinMS.P95),
			"join time (ms)", "viewers", []series{{name: "viewers", x: hx, y: hy, color: "#ff7f0e", bars: true}}),
		svgPlot("loss", "Loss per viewer, so far", perViewer, "% of packets",
			[]series{{name: "raw", x: idx, y: lossRaw, color: "#bbbbbb", bars: true}, {name: "after NACK repair", x: idx, y: loss, color: "#d62728", bars: true}}),
		svgPlot("freezes", fmt.Sprintf("Freezes (video gaps > %s) per viewer: %d in all", FreezeThreshold, r.Received.Freezes),
			perViewer, "frozen (ms)", []series{{name: "freeze time", x: idx, y: freezeMS, color: "#8c564b", bars: true}}),
	}
	return reportPage.Execute(w, data)
}

// maxBars bounds the bars of a per-viewer plot: a report of 10,000 viewers
// stays a page a browser draws at once.
const maxBars = 500

// groupMax returns the largest value of each group of n consecutive values.
func groupMax(v []float64, n int) []float64 {
	var out []float64
	for i := 0; i < len(v); i += n {
		out = append(out, slices.Max(v[i:min(i+n, len(v))]))
	}
	return out
}

// histogramBins bins values into at most n bins: bin centres and counts.
func histogramBins(values []float64, n int) ([]float64, []float64) {
	if len(values) == 0 {
		return nil, nil
	}
	lo, hi := slices.Min(values), slices.Max(values)
	width := (hi - lo) / float64(n)
	if hi == lo || math.IsInf(width, 0) || math.IsNaN(width) {
		return []float64{lo}, []float64{float64(len(values))}
	}
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range xs {
		xs[i] = lo + (float64(i)+0.5)*width
	}
	for _, v := range values {
		i := (v - lo) / width
		if !(i >= 0) { // NaN too
			i = 0
		}
		ys[min(int(min(i, float64(n-1))), n-1)]++
	}
	return xs, ys
}

type series struct {
	name  string
	x, y  []float64
	color string
	bars  bool // vertical bars at each x
	step  bool // a step line (CDF)
}

const (
	plotW, plotH                         = 680, 280
	padLeft, padRight, padTop, padBottom = 64, 16, 34, 44
)

// svgPlot draws the series in one SVG with axes, ticks, a title and a
// legend. With no data it says so in the plot.
func svgPlot(id, title, xlabel, ylabel string, ss []series) template.HTML {
	return svgPlotAxes(id, title, xlabel, ylabel, ss, false)
}

// svgPlotAxes is svgPlot with a choice of x axis: logX draws it on a log
// scale with round ticks (1, 2, 5 times a power of ten), for latencies
// that span milliseconds to seconds; points at or below zero are left out.
// The SVG scales to the width the page gives it (viewBox, no fixed size).
func svgPlotAxes(id, title, xlabel, ylabel string, ss []series, logX bool) template.HTML {
	esc := template.HTMLEscapeString
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="plot-%s" class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" preserveAspectRatio="xMidYMid meet" role="img" aria-label="%s">`,
		id, plotW, plotH, esc(title))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`, padLeft, esc(title))
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	n := 0
	for k, s := range ss {
		s = finite(s)
		if logX {
			s = positiveX(s)
		}
		ss[k] = s
		for i := range s.x {
			xmin, xmax = math.Min(xmin, s.x[i]), math.Max(xmax, s.x[i])
			ymax = math.Max(ymax, s.y[i])
			n++
		}
	}
	x0, y0 := float64(padLeft), float64(plotH-padBottom)
	w, h := float64(plotW-padLeft-padRight), float64(plotH-padTop-padBottom)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`, x0, y0, x0+w, y0)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`, x0, y0, x0, y0-h)
	fmt.Fprintf(&b, `<text x="%g" y="%d" font-size="12" text-anchor="middle">%s</text>`, x0+w/2, plotH-8, esc(xlabel))
	fmt.Fprintf(&b, `<text x="14" y="%g" font-size="12" text-anchor="middle" transform="rotate(-90 14 %g)">%s</text>`, y0-h/2, y0-h/2, esc(ylabel))
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="13" text-anchor="middle" fill="#888">no data</text></svg>`, x0+w/2, y0-h/2)
		return template.HTML(b.String())
	}
	bars := slices.ContainsFunc(ss, func(s series) bool { return s.bars })
	if bars {
		// Room for the first and last bar.
		pad := math.Max((xmax-xmin)/float64(max(n/len(ss), 1)), 1) / 2
		xmin, xmax = xmin-pad, xmax+pad
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax = niceCeil(ymax)
	px := func(x float64) float64 { return x0 + (x-xmin)/(xmax-xmin)*w }
	xticks := []float64{}
	for i := 0; i <= 4; i++ {
		xticks = append(xticks, xmin+(xmax-xmin)*float64(i)/4)
	}
	if logX {
		xticks = logTicks(xmin, xmax)
		lo, hi := math.Log10(xticks[0]), math.Log10(xticks[len(xticks)-1])
		if hi == lo {
			hi = lo + 1
		}
		px = func(x float64) float64 { return x0 + (math.Log10(x)-lo)/(hi-lo)*w }
	}
	py := func(y float64) float64 { return y0 - y/ymax*h }
	for i := 0; i <= 4; i++ {
		yv := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#eee"/>`, x0, py(yv), x0+w, py(yv))
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="11" text-anchor="end">%s</text>`, x0-4, py(yv)+4, tick(yv))
	}
	for _, xv := range xticks {
		if logX {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#eee"/>`, px(xv), y0, px(xv), y0-h)
		}
		fmt.Fprintf(&b, `<text class="xtick" x="%.1f" y="%g" font-size="11" text-anchor="middle">%s</text>`, px(xv), y0+16, tick(xv))
	}
	for si, s := range ss {
		switch {
		case s.bars:
			bw := math.Max(w/float64(max(len(s.x), 1))/float64(len(ss))*0.9, 1)
			for i := range s.x {
				if s.y[i] <= 0 {
					continue
				}
				fmt.Fprintf(&b, `<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s: %s</title></rect>`,
					px(s.x[i])-bw*float64(len(ss))/2+bw*float64(si), py(s.y[i]), bw, y0-py(s.y[i]), s.color, esc(s.name), tick(s.y[i]))
			}
		default:
			var pts []string
			for i := range s.x {
				if s.step && i > 0 {
					pts = append(pts, fmt.Sprintf("%.2f,%.2f", px(s.x[i]), py(s.y[i-1])))
				}
				pts = append(pts, fmt.Sprintf("%.2f,%.2f", px(s.x[i]), py(s.y[i])))
			}
			fmt.Fprintf(&b, `<polyline class="line" fill="none" stroke="%s" stroke-width="2" points="%s"/>`, s.color, strings.Join(pts, " "))
		}
		lx := x0 + w - 150
		ly := float64(padTop) + 4 + float64(si)*16
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="10" height="10" fill="%s"/><text x="%g" y="%g" font-size="11">%s</text>`,
			lx, ly, s.color, lx+14, ly+9, esc(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// finite returns s without the points a plot cannot place (a report read
// from a file may hold anything JSON can).
func finite(s series) series {
	ok := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && math.Abs(v) < 1e15 }
	out := s
	out.x, out.y = nil, nil
	for i := range s.x {
		if i < len(s.y) && ok(s.x[i]) && ok(s.y[i]) {
			out.x = append(out.x, s.x[i])
			out.y = append(out.y, s.y[i])
		}
	}
	return out
}

// positiveX returns s without the points a log axis cannot place.
func positiveX(s series) series {
	out := s
	out.x, out.y = nil, nil
	for i := range s.x {
		if s.x[i] > 0 {
			out.x = append(out.x, s.x[i])
			out.y = append(out.y, s.y[i])
		}
	}
	return out
}

// logTicks returns the round values (1, 2 and 5 times a power of ten)
// from the largest at or below lo to the smallest at or above hi (lo > 0),
// or only the powers of ten when those are more than 13 (four decades).
func logTicks(lo, hi float64) []float64 {
	first := math.Pow(10, math.Floor(math.Log10(lo)))
	var all, decades []float64
	for p := first; ; p *= 10 {
		decades = append(decades, p)
		for _, m := range []float64{1, 2, 5} {
			all = append(all, m*p)
			if m*p >= hi {
				for len(all) > 1 && all[1] <= lo {
					all = all[1:] // start at the last round value at or below lo
				}
				if len(all) <= 13 {
					return all
				}
				if p < hi {
					decades = append(decades, p*10)
				}
				return decades
			}
		}
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func tick(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
	default:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
	}
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"when": func(t time.Time) string { return t.Format(time.RFC3339) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} .plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px}
.plot{border:1px solid #ddd;border-radius:4px;width:100%;height:auto;box-sizing:border-box} pre{background:#f6f6f6;padding:12px;overflow:auto;white-space:pre-wrap;font-size:12px}
.note{background:#fff3cd;border:1px solid #e0c060;padding:8px 12px;border-radius:4px}
.verdict{font-size:18px;font-weight:bold;padding:8px 12px;border-radius:4px}
.pass{background:#e6f4ea;border:1px solid #5a9e6f} .fail{background:#fde8e8;border:1px solid #c0392b}
</style></head><body>
{{if .R.Verdict}}{{if .R.Failures}}<div id="verdict" class="verdict fail">FAIL<ul>{{range .R.Failures}}<li>{{.}}</li>{{end}}</ul></div>
{{else}}<p id="verdict" class="verdict {{if eq .R.Verdict "PASS"}}pass{{else}}fail{{end}}">{{.R.Verdict}}</p>
{{end}}{{end}}<h1>{{.Title}}</h1>
<p>{{.R.Target}} {{.R.URL}}, started {{when .R.StartedAt}}{{if .R.Shards}}, shards {{range .R.Shards}}{{.}} {{end}}{{end}}.
{{.R.Viewers.Connected}} of {{.R.Viewers.Planned}} viewers connected, {{.R.Viewers.Failed}} failed;
loss so far {{printf "%.3f" .R.Received.LossPercent}} % after NACK repair ({{printf "%.3f" .R.Received.LossRawPercent}} % raw).</p>
{{with .R.Received}}{{if .FramesSent}}<p id="frames">Frames received of sent while the viewers watched: {{.FramesReceived}} of {{.FramesSent}} ({{printf "%.2f" .FramesPercent}} %); worst viewer {{printf "%.1f" $.R.Measures.FramesPercent.Min}} %.</p>{{end}}{{end}}
{{if .R.Bottleneck}}<p class="note">{{.R.Bottleneck}}</p>{{end}}
<div class="plots">{{range .Plots}}{{.}}{{end}}</div>
<h2>Summary</h2>
<pre>{{.Text}}</pre>
</body></html>
`))
