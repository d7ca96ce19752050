package loadtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the human table of the report to w.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	if r.Verdict != "" {
		fmt.Fprintf(w, "%s\n", r.Verdict)
	}
	title := r.Target + " " + r.URL
	if r.Scenario != "" {
		title = r.Scenario + " on " + title
	}
	if len(r.Shards) > 0 {
		title += " (shards " + strings.Join(r.Shards, ", ") + ")"
	}
	row("run", "%s, %s%s", title, r.elapsed().Round(time.Millisecond), map[bool]string{true: ", INTERRUPTED"}[r.Interrupted])
	row("publishers", "%d planned, %d started, %d failed", r.Publishers.Planned, r.Publishers.Started, r.Publishers.Failed)
	v := r.Viewers
	row("viewers", "%d planned, %d connected (peak %d at once), %d failed, %d not started, %d left early (churn)",
		v.Planned, v.Connected, v.PeakConnected, v.Failed, v.NotStarted, v.Departed)
	if len(r.FailedJoins) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.FailedJoins)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.FailedJoins[k]))
		}
		row("failed joins", "%s", strings.Join(parts, ", "))
	}
	s := r.Sent
	row("sent", "%d video packets (%d frames, %d keyframes, %d keyframe requests), %d audio packets, %d chats, %d reactions",
		s.VideoPackets, s.VideoFrames, s.Keyframes, s.KeyframeRequests, s.AudioPackets, s.Chats, s.Reactions)
	t := r.Received
	row("received", "%d packets (%d video, %d audio), %s, %d frames, %d keyframes",
		t.Packets, t.VideoPackets, t.AudioPackets, formatBytes(t.Bytes), t.Frames, t.Keyframes)
	if t.FramesSent > 0 {
		row("frames", "%d received of %d sent (%.2f%%) while the viewers watched; worst viewer %.1f%%",
			t.FramesReceived, t.FramesSent, t.FramesPercent, r.Measures.FramesPercent.Min)
	}
	if ms := r.Messages; ms.ChatsSent+ms.ReactionsSent+ms.ChatEvents+ms.ReactionEvents > 0 {
		var codes []string
		for _, k := range slices.Sorted(maps.Keys(ms.RefusedByCode)) {
			codes = append(codes, fmt.Sprintf("%s %d", k, ms.RefusedByCode[k]))
		}
		why := ""
		if len(codes) > 0 {
			why = " (" + strings.Join(codes, ", ") + ")"
		}
		row("chat", "%d of %d chats and %d of %d reactions came back to their sender (delivered), %d refused%s, %d lost; %d chat and %d reaction events received",
			ms.ChatsDelivered, ms.ChatsSent, ms.ReactionsDelivered, ms.ReactionsSent, ms.Refused, why, ms.Lost, ms.ChatEvents, ms.ReactionEvents)
		if ms.ToOthersExpected > 0 {
			row("chat to others", "the other viewers of each room received %d of the %d messages they were to receive (%d missed)",
				ms.ToOthersReceived, ms.ToOthersExpected, ms.ToOthersLost)
		}
	}
	row("loss so far", "%.3f%% raw (%d gaps), %.3f%% after NACK repair (%d packets)", t.LossRawPercent, t.LostRaw, t.LossPercent, t.Lost)
	row("freezes", "%d over %s, %.2f%% of the watch time (video gaps > %s)", t.Freezes,
		time.Duration(t.FreezeMS*float64(time.Millisecond)).Round(time.Millisecond), t.FreezePercent, FreezeThreshold)
	fmt.Fprintf(tw, "per viewer\tmin\tp1\tp5\tp50\tp95\tp99\tmax\tn\n")
	m := r.Measures
	for _, d := range []struct {
		name, unit string
		d          Dist
	}{
		{"join", "ms", m.JoinMS},
		{"first packet", "ms", m.FirstPacketMS},
		{"first keyframe", "ms", m.FirstKeyframeMS},
		{"loss raw", "%", m.LossRawPercent},
		{"loss after repair", "%", m.LossPercent},
		{"jitter", "ms", m.JitterMS},
		{"latency (frames)", "ms", m.LatencyMS},
		{"bitrate", "kbit/s", m.BitrateKbps},
		{"frames received of sent", "%", m.FramesPercent},
		{"freezes", "", m.Freezes},
		{"freeze time", "ms", m.FreezeMS},
	} {
		f := func(x float64) string { return strings.TrimSpace(fmt.Sprintf("%.1f%s", x, d.unit)) }
		if d.unit == "" {
			f = func(x float64) string { return fmt.Sprintf("%.0f", x) }
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", d.name,
			f(d.d.Min), f(d.d.P1), f(d.d.P5), f(d.d.P50), f(d.d.P95), f(d.d.P99), f(d.d.Max), d.d.N)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := r.writeRooms(w); err != nil {
		return err
	}
	lt := r.LoadTester
	busy := "unknown"
	if lt.MachineBusyPercent >= 0 {
		busy = fmt.Sprintf("%.0f %%", lt.MachineBusyPercent)
	}
	row("load tester", "%.2f s CPU, %.2f of %d cores, %.2f us per received packet; machine busy %s; waits for a CPU p99 %.1f ms; %.1f goroutines and %.0f KiB per viewer",
		lt.CPUSeconds, lt.Cores, lt.CoresAvailable, lt.CPUMicrosPerPacket, busy, lt.SchedLatencyP99MS, lt.GoroutinesPerViewer, lt.KiBPerViewer)
	if sv := r.Server; sv != nil {
		if sv.CPUSeconds > 0 {
			row("server", "%.2f s CPU, %.2f cores, %.0f %% in the kernel, %.2f ms CPU per viewer per second",
				sv.CPUSeconds, sv.Cores, sv.KernelPercent, sv.CPUMillisPerViewerSecond)
		}
		switch {
		case sv.PacketsForwarded > 0 && sv.CPUMicrosPerForwarded > 0:
			row("server forwarded", "%.0f packets, %.2f us CPU per forwarded packet; %.0f skipped by its forwarders; %.0f NACKed by viewers",
				sv.PacketsForwarded, sv.CPUMicrosPerForwarded, sv.ForwarderSkipped, sv.NACKsReceived)
		case sv.PacketsForwarded > 0:
			row("server forwarded", "%.0f packets (give --server-pid for its CPU per packet)", sv.PacketsForwarded)
		}
		if sv.RSSAudienceKiB > 0 {
			per := "not measured"
			if sv.KiBPerViewer != nil {
				per = fmt.Sprintf("%+.0f KiB per viewer", *sv.KiBPerViewer)
			}
			row("server memory", "RSS %d MiB before the first viewer of this run, %d MiB with %d viewers: %s",
				sv.RSSBaselineKiB/1024, sv.RSSAudienceKiB/1024, sv.AudienceAtRSS, per)
		}
		if sv.MemoryNote != "" {
			row("", "%s", sv.MemoryNote)
		}
		if sv.GoroutinesAudience > 0 {
			per := ""
			if sv.GoroutinesPerViewer != nil {
				per = fmt.Sprintf(": %+.1f per viewer", *sv.GoroutinesPerViewer)
			}
			row("server goroutines", "%d before the first viewer of this run, %d with %d viewers%s",
				sv.GoroutinesBaseline, sv.GoroutinesAudience, sv.AudienceAtRSS, per)
		}
		for _, e := range sv.Errors {
			row("server probe", "%s", e)
		}
	}
	if r.Bottleneck != "" {
		row("NOTE", "%s", r.Bottleneck)
	}
	for i, e := range r.Errors {
		name := ""
		if i == 0 {
			name = "errors"
		}
		row(name, "%s", e)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.HLS != nil {
		return r.HLS.WriteText(w)
	}
	return nil
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

// StatusLine formats p for the live status line: loss is labelled "last
// second" (the interval) and "so far" (cumulative).
func StatusLine(p Progress) string {
	return fmt.Sprintf("%6.1fs/%.1fs  viewers %d/%d connected, %d failed  %7.0f pkt/s %8.1f Mbit/s  loss %.2f%% last second, %.2f%% so far  tester CPU %3.0f%%",
		p.Elapsed.Seconds(), p.Length.Seconds(), p.Connected, p.Planned, p.Failed, p.PacketsPerSecond, p.Kbps/1000,
		p.LossLastPercent, p.LossSoFarPercent, p.LoadTesterCPUPercent)
}
