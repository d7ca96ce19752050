package loadtest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// ReportSchema names the JSON layout of Report (docs/loadtest.md documents
// every field). It changes when a field changes meaning or goes away.
const ReportSchema = "halo-loadtest/report/v1"

// Report is the result of a run, or of several shard runs merged (Merge).
// It is what --json writes; times are milliseconds and rates per second
// unless a field's name says otherwise.
type Report struct {
	Schema   string `json:"schema"`
	Scenario string `json:"scenario,omitempty"`
	// Target is "websocket" or "whip-whep"; URL the signalling URL or the
	// WHEP endpoint template.
	Target string `json:"target"`
	URL    string `json:"url"`
	// Shards are the shards this report covers ("0/2"); empty for a run of
	// the whole scenario.
	Shards    []string  `json:"shards,omitempty"`
	StartedAt time.Time `json:"started_at"`
	// ElapsedMS is the time from the viewers' clock start to the end.
	ElapsedMS float64 `json:"elapsed_ms"`
	// Interrupted is set when the run was stopped early (Ctrl-C).
	Interrupted bool `json:"interrupted,omitempty"`
	// Verdict is "PASS" or "FAIL: " and every reason, judged against
	// Limits (Judge); Failures are the reasons, one sentence each.
	Verdict  string   `json:"verdict,omitempty"`
	Failures []string `json:"failures,omitempty"`
	Limits   *Limits  `json:"limits,omitempty"`

	Publishers PublisherCounts `json:"publishers"`
	Viewers    ViewerCounts    `json:"viewers"`
	// FailedJoins counts failed viewers and publishers by error code: the
	// server's protocol code (unauthorized, room_full, ...), http_<status>
	// for WHIP/WHEP, or connection_refused, timeout, no_media, error.
	FailedJoins map[string]int `json:"failed_joins"`
	// Errors are the first errors met, at most 10, for a human.
	Errors []string `json:"errors,omitempty"`

	Sent     SentTotals     `json:"sent"`
	Received ReceivedTotals `json:"received"`
	// Messages is what became of the viewers' chat and reactions.
	Messages MessageTotals `json:"messages"`
	// Rooms breaks the viewers' figures down by room, in room order.
	Rooms []RoomTotals `json:"rooms,omitempty"`
	// Measures are per-viewer figures over the viewers that received media
	// (Latency: over every frame of every viewer).
	Measures Measures `json:"measures"`
	// LatencyCDF is the distribution of one-way frame latency: the share
	// of frames at or below each latency.
	LatencyCDF []CDFPoint `json:"latency_cdf"`
	// LatencyBuckets are the raw histogram, so that shard reports merge
	// exactly: [upper bound in microseconds, count].
	LatencyBuckets [][2]uint64 `json:"latency_buckets"`
	// Timeline is one sample per progress interval (default 1 s).
	Timeline []Sample `json:"timeline"`
	// PerViewer holds one record per viewer planned in this report.
	PerViewer []ViewerRecord `json:"per_viewer"`

	LoadTester LoadTesterCost `json:"load_tester"`
	Server     *ServerCost    `json:"server,omitempty"`
	// Bottleneck says in words when the load tester, not the server, limited
	// the run ("" when it did not).
	Bottleneck string `json:"bottleneck,omitempty"`
	// HLS is what the run's LL-HLS viewers measured (halo-loadtest --hls),
	// beside the WebRTC viewers above; nil without them.
	HLS *HLSReport `json:"hls,omitempty"`
}

// PublisherCounts are the publishers of the report.
type PublisherCounts struct {
	Planned int `json:"planned"`
	Started int `json:"started"`
	Failed  int `json:"failed"`
	// FailedByCode counts the failed publishers by error code.
	FailedByCode map[string]int `json:"failed_by_code,omitempty"`
}

// ViewerCounts are the viewers of the report. Every planned viewer is
// exactly one of: connected (media on every track), failed (did not join,
// or not every track delivered media in time), or not started (the run
// ended before its start time). Departed counts connected viewers that
// left as planned (churn) before the end.
type ViewerCounts struct {
	Planned    int `json:"planned"`
	Connected  int `json:"connected"`
	Failed     int `json:"failed"`
	NotStarted int `json:"not_started"`
	Departed   int `json:"departed"`
	// PeakConnected is the most viewers connected at one sample.
	PeakConnected int `json:"peak_connected"`
}

// SentTotals is what this report's publishers sent.
type SentTotals struct {
	VideoPackets uint64 `json:"video_packets"`
	AudioPackets uint64 `json:"audio_packets"`
	VideoFrames  uint64 `json:"video_frames"`
	Keyframes    uint64 `json:"keyframes"`
	// KeyframeRequests counts RTCP PLI and FIR received.
	KeyframeRequests uint64 `json:"keyframe_requests"`
	// Chats and Reactions count what the viewers sent.
	Chats     uint64 `json:"chats"`
	Reactions uint64 `json:"reactions"`
}

// ReceivedTotals adds up what every viewer received. LostRaw counts every
// sequence gap as it opened; Lost what was still missing at the end, after
// NACK repair (retransmissions and late packets filled the rest).
type ReceivedTotals struct {
	Packets      uint64 `json:"packets"`
	VideoPackets uint64 `json:"video_packets"`
	AudioPackets uint64 `json:"audio_packets"`
	Bytes        uint64 `json:"bytes"`
	Frames       uint64 `json:"frames"`
	Keyframes    uint64 `json:"keyframes"`
	LostRaw      uint64 `json:"lost_raw"`
	Lost         uint64 `json:"lost"`
	// LossRawPercent and LossPercent are LostRaw and Lost over the packets
	// expected (received + lost), so far: over the whole run.
	LossRawPercent float64 `json:"loss_raw_percent"`
	LossPercent    float64 `json:"loss_percent"`
	Freezes        uint64  `json:"freezes"`
	FreezeMS       float64 `json:"freeze_ms"`
	// WatchMS is the video watch time of the connected viewers (each from
	// its first packet), FreezePercent the share of it spent frozen.
	WatchMS       float64 `json:"watch_ms"`
	FreezePercent float64 `json:"freeze_percent"`
	// FramesSent is the video frames sent while the connected viewers
	// watched (each counted once per viewer that was to receive it: sent
	// after it had media on every track, before it left, leaving out the
	// first and last 250 ms of its window, whose frames may have been in
	// flight when it was measured); FramesReceived those of them they
	// received; FramesPercent the one of the other.
	FramesSent     uint64  `json:"frames_sent"`
	FramesReceived uint64  `json:"frames_received"`
	FramesPercent  float64 `json:"frames_percent"`
}

// MessageTotals adds up the viewers' chat messages and reactions. The
// server sends each to the whole room, its sender too: one that comes back
// to its sender was delivered.
type MessageTotals struct {
	ChatsSent          uint64 `json:"chats_sent"`
	ReactionsSent      uint64 `json:"reactions_sent"`
	ChatsDelivered     uint64 `json:"chats_delivered"`
	ReactionsDelivered uint64 `json:"reactions_delivered"`
	// Refused counts the sends the server answered with an error,
	// RefusedByCode by its code (room_rate_limited: the room's budget).
	Refused       uint64            `json:"refused"`
	RefusedByCode map[string]uint64 `json:"refused_by_code,omitempty"`
	// Lost counts the sends of viewers that watched to the end that
	// neither came back nor were refused. A viewer that left early (churn)
	// may leave before its last echo: its sends are not judged.
	Lost uint64 `json:"lost"`
	// ChatEvents and ReactionEvents are the events all viewers received
	// (each message once per viewer in its room).
	ChatEvents     uint64 `json:"chat_events"`
	ReactionEvents uint64 `json:"reaction_events"`
	// ToOthersExpected adds up the viewers' ViewerRecord.ToOthersExpected:
	// deliveries of a message to another viewer of its room there had to
	// be; ToOthersReceived those that happened, ToOthersLost the rest.
	ToOthersExpected uint64 `json:"to_others_expected"`
	ToOthersReceived uint64 `json:"to_others_received"`
	ToOthersLost     uint64 `json:"to_others_lost"`
}

// Dist is a distribution over viewers (or frames): how many, the smallest
// value, the 1st, 5th, 50th, 95th, 99th percentile and the largest value
// (nearest rank). The low tail (Min, P1, P5) is where starved viewers are.
type Dist struct {
	N   int     `json:"n"`
	Min float64 `json:"min"`
	P1  float64 `json:"p1"`
	P5  float64 `json:"p5"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Measures are the per-viewer distributions.
type Measures struct {
	// JoinMS: from the viewer's start to the server's joined reply (WHEP:
	// the 201 answer). FirstPacketMS, FirstKeyframeMS: to its first RTP
	// packet and first keyframe.
	JoinMS          Dist `json:"join_ms"`
	FirstPacketMS   Dist `json:"first_packet_ms"`
	FirstKeyframeMS Dist `json:"first_keyframe_ms"`
	// Loss per viewer, raw and after NACK repair, percent of expected.
	LossRawPercent Dist `json:"loss_raw_percent"`
	LossPercent    Dist `json:"loss_percent"`
	// JitterMS is the RFC 3550 interarrival jitter at the end (video, or
	// audio for audio-only viewers).
	JitterMS Dist `json:"jitter_ms"`
	// LatencyMS is one-way latency from the send time in each frame, over
	// all frames (N = frames).
	LatencyMS Dist `json:"latency_ms"`
	// BitrateKbps is each viewer's received bitrate from its first packet.
	BitrateKbps Dist `json:"bitrate_kbps"`
	// FramesPercent is each viewer's video frames received of those sent
	// while it watched (viewers of rooms with video).
	FramesPercent Dist `json:"frames_percent"`
	// Freezes and FreezeMS: video gaps over 500 ms, count and total time.
	Freezes  Dist `json:"freezes"`
	FreezeMS Dist `json:"freeze_ms"`
}

// CDFPoint: Fraction of frames arrived within LatencyMS.
type CDFPoint struct {
	LatencyMS float64 `json:"latency_ms"`
	Fraction  float64 `json:"fraction"`
}

// Sample is one point of the timeline. Loss "last" is over the interval
// before it (labelled "in the last second" in the status line), "so far"
// over the run up to it.
type Sample struct {
	TMS                  float64 `json:"t_ms"`
	Connected            int     `json:"connected"`
	Failed               int     `json:"failed"`
	PacketsPerSecond     float64 `json:"packets_per_s"`
	Kbps                 float64 `json:"kbps"`
	LossLastPercent      float64 `json:"loss_last_percent"`
	LossRawLastPercent   float64 `json:"loss_raw_last_percent"`
	LossSoFarPercent     float64 `json:"loss_so_far_percent"`
	LoadTesterCPUPercent float64 `json:"load_tester_cpu_percent"`
}

// ViewerRecord is one viewer's figures.
type ViewerRecord struct {
	Identity string `json:"identity"`
	Room     string `json:"room"`
	// PlannedStartMS and PlannedLeaveMS come from the plan (leave 0: to
	// the end); StartMS and LeftMS are when it happened (0: did not).
	PlannedStartMS float64 `json:"planned_start_ms"`
	PlannedLeaveMS float64 `json:"planned_leave_ms,omitempty"`
	StartMS        float64 `json:"start_ms"`
	LeftMS         float64 `json:"left_ms,omitempty"`
	// Outcome is connected, failed or not_started; ErrorCode and Error say
	// why it failed.
	Outcome         string  `json:"outcome"`
	ErrorCode       string  `json:"error_code,omitempty"`
	Error           string  `json:"error,omitempty"`
	JoinMS          float64 `json:"join_ms,omitempty"`
	FirstPacketMS   float64 `json:"first_packet_ms,omitempty"`
	FirstKeyframeMS float64 `json:"first_keyframe_ms,omitempty"`
	Packets         uint64  `json:"packets"`
	VideoPackets    uint64  `json:"video_packets"`
	AudioPackets    uint64  `json:"audio_packets"`
	Bytes           uint64  `json:"bytes"`
	Frames          uint64  `json:"frames"`
	Keyframes       uint64  `json:"keyframes"`
	LostRaw         uint64  `json:"lost_raw"`
	Lost            uint64  `json:"lost"`
	LossRawPercent  float64 `json:"loss_raw_percent"`
	LossPercent     float64 `json:"loss_percent"`
	JitterMS        float64 `json:"jitter_ms"`
	LatencyP50MS    float64 `json:"latency_p50_ms"`
	LatencyP95MS    float64 `json:"latency_p95_ms"`
	BitrateKbps     float64 `json:"bitrate_kbps"`
	Freezes         uint64  `json:"freezes"`
	FreezeMS        float64 `json:"freeze_ms"`
	// WatchMS is its video watch time, from its first packet to the end
	// of its measures (0: no video).
	WatchMS float64 `json:"watch_ms,omitempty"`
	// FramesSent is the video frames its room's publishers sent between
	// the moment it had media on every track and its leave (or the end)
	// that it was to receive; FramesReceived those of them it received.
	FramesSent     uint64 `json:"frames_sent,omitempty"`
	FramesReceived uint64 `json:"frames_received,omitempty"`
	// Chat and reactions: what it sent, what of it came back (delivered)
	// or was refused (by code), and the events of its room it received
	// (ChatStats).
	ChatsSent          uint64            `json:"chats_sent,omitempty"`
	ReactionsSent      uint64            `json:"reactions_sent,omitempty"`
	ChatsDelivered     uint64            `json:"chats_delivered,omitempty"`
	ReactionsDelivered uint64            `json:"reactions_delivered,omitempty"`
	MessagesRefused    map[string]uint64 `json:"messages_refused,omitempty"`
	ChatEvents         uint64            `json:"chat_events,omitempty"`
	ReactionEvents     uint64            `json:"reaction_events,omitempty"`
	// ToOthersExpected is the chat messages and reactions of the other
	// viewers of its room it was to receive: those that came back to
	// their sender while it was in the room, more than ChatMargin from
	// either end of its stay; ToOthersReceived those of them that reached
	// it. Judged among the viewers of one run (a shard's own).
	ToOthersExpected uint64 `json:"to_others_expected,omitempty"`
	ToOthersReceived uint64 `json:"to_others_received,omitempty"`
}

// Viewer outcomes.
const (
	OutcomeConnected  = "connected"
	OutcomeFailed     = "failed"
	OutcomeNotStarted = "not_started"
)

// LoadTesterCost is what the load-testing process itself used.
type LoadTesterCost struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	// Cores is the average number of cores busy in this process;
	// CoresAvailable what the machine has.
	Cores          float64 `json:"cores"`
	CoresAvailable int     `json:"cores_available"`
	// MachineBusyPercent is the whole machine's CPU busy share over the
	// run (-1: unknown).
	MachineBusyPercent float64 `json:"machine_busy_percent"`
	// CPUMicrosPerPacket is this process's CPU per packet received by its
	// viewers (sending included: it is what the figure costs).
	CPUMicrosPerPacket float64 `json:"cpu_us_per_received_packet"`
	// GoroutinesPerViewer and KiBPerViewer are this process's goroutines
	// and RSS added per connected viewer, from its start to the end of the
	// hold (0 when no viewer was connected then).
	GoroutinesPerViewer float64 `json:"goroutines_per_viewer"`
	// SchedLatencyP99MS is the 99th percentile of the time this process's
	// goroutines waited for a CPU (Go runtime metric /sched/latencies):
	// high, and its viewers' packets queue in its own buffers.
	SchedLatencyP99MS float64 `json:"sched_latency_p99_ms"`
	KiBPerViewer      float64 `json:"kib_per_viewer"`
}

// ServerCost is what the server paid, from --server-pid (CPU, RSS) and
// --metrics-url (packets forwarded), from the moment this run's publishers
// were up (before its first viewer) to its end.
type ServerCost struct {
	CPUSeconds    float64 `json:"cpu_seconds,omitempty"`
	KernelPercent float64 `json:"kernel_percent,omitempty"`
	// Cores is its average number of busy cores.
	Cores            float64 `json:"cores,omitempty"`
	PacketsForwarded float64 `json:"packets_forwarded,omitempty"`
	// ForwarderSkipped counts packets the server's forwarders skipped
	// because they fell behind (its viewers never got them);
	// NACKsReceived the packets viewers reported lost.
	ForwarderSkipped      float64 `json:"forwarder_skipped,omitempty"`
	NACKsReceived         float64 `json:"nacks_received,omitempty"`
	CPUMicrosPerForwarded float64 `json:"cpu_us_per_forwarded_packet,omitempty"`
	// CPUMillisPerViewerSecond is CPU per connected viewer per second.
	CPUMillisPerViewerSecond float64 `json:"cpu_ms_per_viewer_second,omitempty"`
	// RSS before the first viewer of this run (the baseline) and with the
	// audience connected (at the end of the hold), in KiB; KiBPerViewer is
	// their difference over the viewers connected then, given only when the
	// baseline is one this run can vouch for (MemoryNote says why not).
	RSSBaselineKiB int64    `json:"rss_baseline_kib,omitempty"`
	RSSAudienceKiB int64    `json:"rss_audience_kib,omitempty"`
	AudienceAtRSS  int      `json:"audience_at_rss,omitempty"`
	KiBPerViewer   *float64 `json:"kib_per_viewer,omitempty"`
	MemoryNote     string   `json:"memory_note,omitempty"`
	// The server's go_goroutines at the baseline and with the audience;
	// GoroutinesPerViewer is given when KiBPerViewer is (a fresh baseline).
	GoroutinesBaseline  int      `json:"goroutines_baseline,omitempty"`
	GoroutinesAudience  int      `json:"goroutines_audience,omitempty"`
	GoroutinesPerViewer *float64 `json:"goroutines_per_viewer,omitempty"`
	Errors              []string `json:"errors,omitempty"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(io.LimitReader(rd, 1<<30))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("loadtest: read report: %w", err)
	}
	if r.Schema != ReportSchema {
		return nil, fmt.Errorf("loadtest: read report: schema %q, want %q", r.Schema, ReportSchema)
	}
	return &r, nil
}

// Limits are what a run must meet to pass. A zero field is not checked.
type Limits struct {
	// MaxLossPercent: loss after repair at or above it fails.
	MaxLossPercent float64 `json:"max_loss_percent"`
	// MaxLatencyMS: frame latency p95 above it fails.
	MaxLatencyMS float64 `json:"max_latency_ms"`
	// MaxFreezePercent: freezes over more than this share of the watch
	// time fail.
	MaxFreezePercent float64 `json:"max_freeze_percent"`
	// MinFramesPercent: frames received below this share of those sent
	// fail.
	MinFramesPercent float64 `json:"min_frames_percent"`
}

// DefaultLimits are halo-loadtest's defaults: loss 1 %, latency p95 1 s,
// freezes 2 % of the watch time, frames received 99 % of those sent.
func DefaultLimits() Limits {
	return Limits{MaxLossPercent: 1, MaxLatencyMS: 1000, MaxFreezePercent: 2, MinFramesPercent: 99}
}

// Judge sets the report's verdict against l: Limits, Failures (one
// sentence per reason) and Verdict.
func (r *Report) Judge(l Limits) {
	r.Limits = &l
	r.Failures = nil
	fail := func(format string, args ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, args...)) }
	if r.Interrupted {
		fail("the run was interrupted")
	}
	if r.Publishers.Failed > 0 {
		fail("%d of %d publishers failed", r.Publishers.Failed, r.Publishers.Planned)
	}
	if n := r.Viewers.Failed + r.Viewers.NotStarted; n > 0 {
		fail("%d of %d viewers failed to receive media", n, r.Viewers.Planned)
	}
	if r.Viewers.Planned > 0 && r.Viewers.Connected == 0 && r.Viewers.Failed == 0 && !r.Interrupted {
		fail("no viewer connected")
	}
	if l.MaxLossPercent > 0 && r.Received.LossPercent >= l.MaxLossPercent {
		fail("loss %.3f%% >= %.3f%% (--max-loss)", r.Received.LossPercent, l.MaxLossPercent)
	}
	if lat := r.Measures.LatencyMS; l.MaxLatencyMS > 0 && lat.N > 0 && lat.P95 > l.MaxLatencyMS {
		fail("frame latency p95 %s exceeds %s (--max-latency): viewers fell behind live (p99 %s)",
			fmtMS(lat.P95), fmtMS(l.MaxLatencyMS), fmtMS(lat.P99))
	}
	if t := r.Received; l.MaxFreezePercent > 0 && t.WatchMS > 0 && t.FreezePercent > l.MaxFreezePercent {
		fail("freezes took %.1f%% of the watch time, more than %.1f%% (--max-freeze)", t.FreezePercent, l.MaxFreezePercent)
	}
	if t := r.Received; l.MinFramesPercent > 0 && t.FramesSent > 0 && t.FramesPercent < l.MinFramesPercent {
		fail("viewers received %d of %d frames sent (%.1f%%), fewer than %.1f%% (--min-frames); the worst viewer %.1f%%",
			t.FramesReceived, t.FramesSent, t.FramesPercent, l.MinFramesPercent, r.Measures.FramesPercent.Min)
	}
	if m := r.Messages; m.Lost > 0 {
		fail("%d of %d chat messages and reactions sent never came back to their sender (neither delivered to the room nor refused)",
			m.Lost, m.ChatsSent+m.ReactionsSent)
	}
	if m := r.Messages; m.ToOthersLost > 0 {
		worst := RoomTotals{}
		for _, t := range r.Rooms {
			if t.ToOthersExpected-t.ToOthersReceived > worst.ToOthersExpected-worst.ToOthersReceived {
				worst = t
			}
		}
		where := ""
		if len(r.Rooms) > 1 {
			where = fmt.Sprintf("; room %s missed %d of %d", worst.Room, worst.ToOthersExpected-worst.ToOthersReceived, worst.ToOthersExpected)
		}
		fail("the other viewers of their room missed %d of %d chat messages and reactions they were to receive (delivered to the sender while they were in the room)%s",
			m.ToOthersLost, m.ToOthersExpected, where)
	}
	r.Verdict = "PASS"
	if len(r.Failures) > 0 {
		r.Verdict = "FAIL: " + strings.Join(r.Failures, "; ")
	}
}

// Check judges the report against l (Judge) and returns the reasons it
// fails, nil when it passes.
func (r *Report) Check(l Limits) error {
	r.Judge(l)
	var errs []error
	for _, f := range r.Failures {
		errs = append(errs, errors.New(f))
	}
	return errors.Join(errs...)
}

// fmtMS formats milliseconds for a sentence: "850 ms", "6.70 s".
func fmtMS(ms float64) string {
	if ms < 1000 {
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.2f s", ms/1000)
}

// dist returns the distribution of values (sorted in place).
func dist(values []float64) Dist {
	if len(values) == 0 {
		return Dist{}
	}
	slices.Sort(values)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(values)))) - 1
		return values[min(max(i, 0), len(values)-1)]
	}
	return Dist{N: len(values), Min: values[0], P1: q(0.01), P5: q(0.05),
		P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: values[len(values)-1]}
}

func lossPercent(lost, received uint64) float64 {
	if lost+received == 0 {
		return 0
	}
	return 100 * float64(lost) / float64(lost+received)
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// aggregate recomputes every total and distribution of r from its
// PerViewer records and LatencyBuckets: the one place both a run and
// Merge derive them, so a merged report is what one run would have said.
func (r *Report) aggregate() {
	r.Viewers.Planned = len(r.PerViewer)
	r.Viewers.Connected, r.Viewers.Failed, r.Viewers.NotStarted, r.Viewers.Departed = 0, 0, 0, 0
	r.Received = ReceivedTotals{}
	r.Messages = MessageTotals{}
	var join, firstPkt, firstKey, lossRaw, loss, jitter, bitrate, freezes, freezeMS, frames []float64
	var frozenMS float64 // of the connected viewers
	codes := map[string]int{}
	for k, v := range r.Publishers.FailedByCode {
		codes[k] += v
	}
	slices.SortFunc(r.PerViewer, func(a, b ViewerRecord) int {
		return cmp.Or(cmp.Compare(a.PlannedStartMS, b.PlannedStartMS), cmp.Compare(a.Identity, b.Identity))
	})
	for _, v := range r.PerViewer {
		switch v.Outcome {
		case OutcomeConnected:
			r.Viewers.Connected++
			if v.LeftMS > 0 {
				r.Viewers.Departed++
			}
		case OutcomeFailed:
			r.Viewers.Failed++
			codes[cmp.Or(v.ErrorCode, "error")]++
		default:
			r.Viewers.NotStarted++
		}
		t := &r.Received
		t.Packets += v.Packets
		t.Bytes += v.Bytes
		t.Frames += v.Frames
		t.Keyframes += v.Keyframes
		t.LostRaw += v.LostRaw
		t.Lost += v.Lost
		t.Freezes += v.Freezes
		t.FreezeMS += v.FreezeMS
		t.VideoPackets += v.VideoPackets
		t.AudioPackets += v.AudioPackets
		r.Messages.add(v)
		if v.Outcome != OutcomeConnected {
			continue
		}
		join = append(join, v.JoinMS)
		firstPkt = append(firstPkt, v.FirstPacketMS)
		if v.FirstKeyframeMS > 0 {
			firstKey = append(firstKey, v.FirstKeyframeMS)
		}
		lossRaw = append(lossRaw, v.LossRawPercent)
		loss = append(loss, v.LossPercent)
		jitter = append(jitter, v.JitterMS)
		bitrate = append(bitrate, v.BitrateKbps)
		freezes = append(freezes, float64(v.Freezes))
		freezeMS = append(freezeMS, v.FreezeMS)
		r.Received.WatchMS += v.WatchMS
		frozenMS += v.FreezeMS
		if v.FramesSent > 0 {
			r.Received.FramesSent += v.FramesSent
			r.Received.FramesReceived += v.FramesReceived
			frames = append(frames, 100*float64(v.FramesReceived)/float64(v.FramesSent))
		}
	}
	if r.Received.WatchMS > 0 {
		r.Received.FreezePercent = 100 * frozenMS / r.Received.WatchMS
	}
	if r.Received.FramesSent > 0 {
		r.Received.FramesPercent = 100 * float64(r.Received.FramesReceived) / float64(r.Received.FramesSent)
	}
	r.FailedJoins = codes
	r.Rooms = roomTotals(r.PerViewer)
	expected := r.Received.Packets + r.Received.Lost
	r.Received.LossRawPercent = lossPercent(r.Received.LostRaw, expected-min(r.Received.LostRaw, expected))
	r.Received.LossPercent = lossPercent(r.Received.Lost, r.Received.Packets)
	r.Measures = Measures{
		JoinMS: dist(join), FirstPacketMS: dist(firstPkt), FirstKeyframeMS: dist(firstKey),
		LossRawPercent: dist(lossRaw), LossPercent: dist(loss), JitterMS: dist(jitter),
		BitrateKbps: dist(bitrate), Freezes: dist(freezes), FreezeMS: dist(freezeMS),
		FramesPercent: dist(frames),
	}
	l := latencyFromBuckets(r.LatencyBuckets)
	r.Measures.LatencyMS = Dist{
		N: int(l.total), Min: msOf(l.Quantile(0)), P1: msOf(l.Quantile(0.01)), P5: msOf(l.Quantile(0.05)),
		P50: msOf(l.Quantile(0.50)), P95: msOf(l.Quantile(0.95)), P99: msOf(l.Quantile(0.99)), Max: msOf(l.Quantile(1)),
	}
	r.LatencyCDF = l.cdf()
	peak := 0
	for _, s := range r.Timeline {
		peak = max(peak, s.Connected)
	}
	r.Viewers.PeakConnected = peak
}

// add counts one viewer's chat and reactions.
func (m *MessageTotals) add(v ViewerRecord) {
	m.ChatsSent += v.ChatsSent
	m.ReactionsSent += v.ReactionsSent
	m.ChatsDelivered += v.ChatsDelivered
	m.ReactionsDelivered += v.ReactionsDelivered
	m.ChatEvents += v.ChatEvents
	m.ReactionEvents += v.ReactionEvents
	var refused uint64
	for code, n := range v.MessagesRefused {
		if m.RefusedByCode == nil {
			m.RefusedByCode = map[string]uint64{}
		}
		m.RefusedByCode[code] += n
		refused += n
	}
	m.Refused += refused
	m.ToOthersExpected += v.ToOthersExpected
	m.ToOthersReceived += v.ToOthersReceived
	m.ToOthersLost += v.ToOthersExpected - min(v.ToOthersReceived, v.ToOthersExpected)
	if v.Outcome == OutcomeConnected && v.LeftMS == 0 {
		sent, back := v.ChatsSent+v.ReactionsSent, v.ChatsDelivered+v.ReactionsDelivered+refused
		m.Lost += sent - min(back, sent)
	}
}
