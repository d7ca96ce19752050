package loadtest

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Merge combines the reports of shard runs of one scenario into one, as if
// one process had run every shard: viewer records are pooled and every
// distribution recomputed from them, counters add up, timelines add up
// sample by sample (the shards of an Indexed Job start together), latency
// histograms add bucket by bucket. Load-tester CPU adds up (several
// processes); the server's figures are kept from the first report that has
// them (one shard measures the server). Reports of different scenarios or
// targets, or two reports of the same shard, are refused.
func Merge(reports ...*Report) (*Report, error) {
	if len(reports) == 0 {
		return nil, errors.New("loadtest: merge: no reports")
	}
	first := reports[0]
	out := &Report{
		Schema: ReportSchema, Scenario: first.Scenario, Target: first.Target, URL: first.URL,
		StartedAt: first.StartedAt,
	}
	seen := map[string]bool{}
	latency := &Latency{}
	var timeline []Sample
	var perViewerWeight float64
	for i, r := range reports {
		if r.Scenario != first.Scenario || r.Target != first.Target {
			return nil, fmt.Errorf("loadtest: merge: report %d is of scenario %q on %s, report 0 of %q on %s",
				i, r.Scenario, r.Target, first.Scenario, first.Target)
		}
		for _, sh := range r.Shards {
			if seen[sh] {
				return nil, fmt.Errorf("loadtest: merge: shard %s given twice", sh)
			}
			seen[sh] = true
			out.Shards = append(out.Shards, sh)
		}
		if r.StartedAt.Before(out.StartedAt) {
			out.StartedAt = r.StartedAt
		}
		out.ElapsedMS = max(out.ElapsedMS, r.ElapsedMS)
		out.Interrupted = out.Interrupted || r.Interrupted
		out.Publishers.Planned += r.Publishers.Planned
		out.Publishers.Started += r.Publishers.Started
		out.Publishers.Failed += r.Publishers.Failed
		for k, v := range r.Publishers.FailedByCode {
			if out.Publishers.FailedByCode == nil {
				out.Publishers.FailedByCode = map[string]int{}
			}
			out.Publishers.FailedByCode[k] += v
		}
		for _, e := range r.Errors {
			if len(out.Errors) < 10 {
				out.Errors = append(out.Errors, e)
			}
		}
		out.Sent.VideoPackets += r.Sent.VideoPackets
		out.Sent.AudioPackets += r.Sent.AudioPackets
		out.Sent.VideoFrames += r.Sent.VideoFrames
		out.Sent.Keyframes += r.Sent.Keyframes
		out.Sent.KeyframeRequests += r.Sent.KeyframeRequests
		out.Sent.Chats += r.Sent.Chats
		out.Sent.Reactions += r.Sent.Reactions
		out.PerViewer = append(out.PerViewer, r.PerViewer...)
		latency.Add(latencyFromBuckets(r.LatencyBuckets))
		timeline = addTimelines(timeline, r.Timeline)
		lt := &out.LoadTester
		lt.CPUSeconds += r.LoadTester.CPUSeconds
		lt.Cores += r.LoadTester.Cores
		lt.CoresAvailable += r.LoadTester.CoresAvailable
		lt.MachineBusyPercent = max(lt.MachineBusyPercent, r.LoadTester.MachineBusyPercent)
		lt.SchedLatencyP99MS = max(lt.SchedLatencyP99MS, r.LoadTester.SchedLatencyP99MS)
		// Per-viewer figures: weighted by the viewers each shard had.
		w := float64(r.Viewers.Connected)
		lt.GoroutinesPerViewer += r.LoadTester.GoroutinesPerViewer * w
		lt.KiBPerViewer += r.LoadTester.KiBPerViewer * w
		perViewerWeight += w
		if out.Server == nil && r.Server != nil {
			s := *r.Server
			out.Server = &s
		}
		if r.Bottleneck != "" && out.Bottleneck == "" {
			out.Bottleneck = r.Bottleneck
			if len(r.Shards) > 0 {
				out.Bottleneck = "Shard " + r.Shards[0] + ": " + r.Bottleneck
			}
		}
	}
	if perViewerWeight > 0 {
		out.LoadTester.GoroutinesPerViewer /= perViewerWeight
		out.LoadTester.KiBPerViewer /= perViewerWeight
	}
	slices.Sort(out.Shards)
	out.LatencyBuckets = latency.buckets()
	out.Timeline = timeline
	out.aggregate()
	if out.Received.Packets > 0 {
		out.LoadTester.CPUMicrosPerPacket = out.LoadTester.CPUSeconds * 1e6 / float64(out.Received.Packets)
	}
	return out, nil
}

// addTimelines adds b to a sample by sample (by index: one sample per
// interval from each run's start). Loss "so far" and "last" are weighted by
// the packets of each side.
func addTimelines(a, b []Sample) []Sample {
	n := max(len(a), len(b))
	out := make([]Sample, n)
	for i := range n {
		var x, y Sample
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		w := func(px, py float64) float64 {
			if x.PacketsPerSecond+y.PacketsPerSecond == 0 {
				return max(px, py)
			}
			return (px*x.PacketsPerSecond + py*y.PacketsPerSecond) / (x.PacketsPerSecond + y.PacketsPerSecond)
		}
		out[i] = Sample{
			TMS:                  max(x.TMS, y.TMS),
			Connected:            x.Connected + y.Connected,
			Failed:               x.Failed + y.Failed,
			PacketsPerSecond:     x.PacketsPerSecond + y.PacketsPerSecond,
			Kbps:                 x.Kbps + y.Kbps,
			LossLastPercent:      w(x.LossLastPercent, y.LossLastPercent),
			LossRawLastPercent:   w(x.LossRawLastPercent, y.LossRawLastPercent),
			LossSoFarPercent:     w(x.LossSoFarPercent, y.LossSoFarPercent),
			LoadTesterCPUPercent: x.LoadTesterCPUPercent + y.LoadTesterCPUPercent,
		}
	}
	return out
}

// elapsed returns the report's elapsed time.
func (r *Report) elapsed() time.Duration {
	return time.Duration(r.ElapsedMS * float64(time.Millisecond))
}
