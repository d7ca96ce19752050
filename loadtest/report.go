package loadtest

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteText writes a human-readable summary of the report to w.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("elapsed", "%s", r.Elapsed.Round(time.Millisecond))
	row("viewers", "%d requested, %d started, %d connected, %d failed",
		r.ViewersRequested, r.ViewersStarted, r.ViewersConnected, r.ViewersFailed)
	row("publisher sent", "%d video packets (%d frames, %d keyframes, %d keyframe requests), %d audio packets",
		r.Publisher.VideoPackets, r.Publisher.VideoFrames, r.Publisher.Keyframes, r.Publisher.PLIs, r.Publisher.AudioPackets)
	row("viewers received", "%d packets (%d video, %d audio), %s, %d frames, %d keyframes",
		r.Packets, r.VideoPackets, r.AudioPackets, formatBytes(r.Bytes), r.Frames, r.Keyframes)
	row("loss", "%d packets (%.3f%%)", r.Lost, r.LossPercent)
	row("keyframe first", "%d of %d started viewers", r.KeyframeFirst, r.ViewersStarted)
	row("first keyframe", "p50 %s  p95 %s  max %s",
		ms(r.FirstKeyframeP50), ms(r.FirstKeyframeP95), ms(r.FirstKeyframeMax))
	row("latency", "p50 %s  p95 %s  p99 %s  max %s", ms(r.LatencyP50), ms(r.LatencyP95), ms(r.LatencyP99), ms(r.LatencyMax))
	for i, e := range r.Errors {
		name := ""
		if i == 0 {
			name = "errors"
		}
		row(name, "%s", e)
	}
	return tw.Flush()
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

func formatBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.2f KiB", float64(b)/(1<<10))
	default:
		return fmt.Sprintf("%d B", b)
	}
}
