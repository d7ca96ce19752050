package loadtest

import (
	"strings"
	"testing"
)

// Each limit fails the run with its own sentence, and a run within every
// limit passes; a zero limit is not checked.
func TestReport_JudgeNamesEachLimitExceeded(t *testing.T) {
	ok := func() *Report {
		return &Report{
			Viewers:  ViewerCounts{Planned: 2, Connected: 2},
			Received: ReceivedTotals{WatchMS: 60_000, FreezePercent: 1, FramesSent: 1000, FramesReceived: 995, FramesPercent: 99.5},
			Measures: Measures{LatencyMS: Dist{N: 1000, P95: 900, P99: 950}},
		}
	}
	r := ok()
	if err := r.Check(DefaultLimits()); err != nil || r.Verdict != "PASS" {
		t.Fatalf("a run within the limits: %v, verdict %q", err, r.Verdict)
	}
	for name, c := range map[string]struct {
		bend func(*Report)
		want string
	}{
		"latency": {func(r *Report) { r.Measures.LatencyMS.P95, r.Measures.LatencyMS.P99 = 6700, 7200 },
			"frame latency p95 6.70 s exceeds 1.00 s (--max-latency): viewers fell behind live (p99 7.20 s)"},
		"freezes": {func(r *Report) { r.Received.FreezePercent = 3.5 },
			"freezes took 3.5% of the watch time, more than 2.0% (--max-freeze)"},
		"frames": {func(r *Report) {
			r.Received.FramesReceived, r.Received.FramesPercent, r.Measures.FramesPercent.Min = 750, 75, 40
		}, "viewers received 750 of 1000 frames sent (75.0%), fewer than 99.0% (--min-frames); the worst viewer 40.0%"},
	} {
		r := ok()
		c.bend(r)
		err := r.Check(DefaultLimits())
		if err == nil || err.Error() != c.want || r.Verdict != "FAIL: "+c.want {
			t.Errorf("%s: err %v, verdict %q, want %q", name, err, r.Verdict, c.want)
		}
		if err := r.Check(Limits{MaxLossPercent: 1}); err != nil {
			t.Errorf("%s: with that limit off: %v", name, err)
		}
	}
}

// A chat or reaction that never came back to its sender, and was not
// refused, fails the run; those of a viewer that left early (it may leave
// before its echo) are not judged, and refusals are not losses.
func TestReport_ChatNotDeliveredFailsTheRun(t *testing.T) {
	r := &Report{PerViewer: []ViewerRecord{
		{Identity: "a", Outcome: OutcomeConnected, ChatsSent: 5, ReactionsSent: 3, ChatsDelivered: 4, ReactionsDelivered: 1,
			MessagesRefused: map[string]uint64{"room_rate_limited": 2}, ChatEvents: 8, ReactionEvents: 2},
		{Identity: "b", Outcome: OutcomeConnected, ChatsSent: 2, ChatsDelivered: 2, ChatEvents: 8},
		{Identity: "c", Outcome: OutcomeConnected, LeftMS: 900, ChatsSent: 4, ReactionsSent: 4, ChatsDelivered: 1},
	}}
	r.aggregate()
	m := r.Messages
	if m.ChatsSent != 11 || m.ReactionsSent != 7 || m.ChatsDelivered != 7 || m.ReactionsDelivered != 1 ||
		m.Refused != 2 || m.RefusedByCode["room_rate_limited"] != 2 || m.Lost != 1 || m.ChatEvents != 16 || m.ReactionEvents != 2 {
		t.Fatalf("totals %+v", m)
	}
	want := "1 of 18 chat messages and reactions sent never came back to their sender (neither delivered to the room nor refused)"
	if err := r.Check(Limits{}); err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
	var text strings.Builder
	_ = r.WriteText(&text)
	if !strings.Contains(text.String(), "7 of 11 chats and 1 of 7 reactions came back to their sender (delivered), 2 refused (room_rate_limited 2), 1 lost; 16 chat and 2 reaction events received") {
		t.Fatalf("table:\n%s", text.String())
	}
	r.PerViewer[0].ReactionsDelivered = 2
	r.aggregate()
	if err := r.Check(Limits{}); err != nil {
		t.Fatalf("every message accounted for: %v", err)
	}
}
