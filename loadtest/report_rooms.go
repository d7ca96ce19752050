package loadtest

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// RoomTotals is one room's share of a run: its viewers and what they
// received, so that a scenario of many rooms shows which room suffered.
type RoomTotals struct {
	Room string `json:"room"`
	// Planned, Connected, Failed and Departed count the room's viewers as
	// ViewerCounts does.
	Planned   int `json:"planned"`
	Connected int `json:"connected"`
	Failed    int `json:"failed"`
	Departed  int `json:"departed"`
	// Packets and Lost are the packets its viewers received and lost
	// after NACK repair, LossPercent the one over both.
	Packets     uint64  `json:"packets"`
	Lost        uint64  `json:"lost"`
	LossPercent float64 `json:"loss_percent"`
	// FramesSent and FramesReceived are as in ReceivedTotals, for its
	// viewers; FramesPercent the one of the other; WorstFramesPercent its
	// worst viewer's.
	FramesSent         uint64  `json:"frames_sent"`
	FramesReceived     uint64  `json:"frames_received"`
	FramesPercent      float64 `json:"frames_percent"`
	WorstFramesPercent float64 `json:"worst_frames_percent"`
	// LatencyP95MS is the largest of its viewers' frame latency p95.
	LatencyP95MS float64 `json:"latency_p95_ms"`
	// FreezePercent is the share of its viewers' watch time frozen.
	FreezePercent float64 `json:"freeze_percent"`
	// BitrateKbps is its viewers' median received bitrate.
	BitrateKbps float64 `json:"bitrate_kbps"`
	// ToOthersExpected and ToOthersReceived add up its viewers' chat
	// messages and reactions from the others of the room (ViewerRecord).
	ToOthersExpected uint64 `json:"to_others_expected"`
	ToOthersReceived uint64 `json:"to_others_received"`
}

// roomTotals breaks the viewer records down by room, in room order.
func roomTotals(records []ViewerRecord) []RoomTotals {
	byRoom := map[string]*RoomTotals{}
	watch, frozen := map[string]float64{}, map[string]float64{}
	bitrates := map[string][]float64{}
	for _, v := range records {
		t := byRoom[v.Room]
		if t == nil {
			t = &RoomTotals{Room: v.Room, WorstFramesPercent: 100}
			byRoom[v.Room] = t
		}
		t.Planned++
		switch v.Outcome {
		case OutcomeConnected:
			t.Connected++
			if v.LeftMS > 0 {
				t.Departed++
			}
		case OutcomeFailed:
			t.Failed++
		}
		t.Packets += v.Packets
		t.Lost += v.Lost
		t.ToOthersExpected += v.ToOthersExpected
		t.ToOthersReceived += min(v.ToOthersReceived, v.ToOthersExpected)
		if v.Outcome != OutcomeConnected {
			continue
		}
		t.LatencyP95MS = max(t.LatencyP95MS, v.LatencyP95MS)
		watch[v.Room] += v.WatchMS
		frozen[v.Room] += v.FreezeMS
		bitrates[v.Room] = append(bitrates[v.Room], v.BitrateKbps)
		if v.FramesSent > 0 {
			t.FramesSent += v.FramesSent
			t.FramesReceived += v.FramesReceived
			t.WorstFramesPercent = min(t.WorstFramesPercent, 100*float64(v.FramesReceived)/float64(v.FramesSent))
		}
	}
	out := make([]RoomTotals, 0, len(byRoom))
	for room, t := range byRoom {
		t.LossPercent = lossPercent(t.Lost, t.Packets)
		if t.FramesSent > 0 {
			t.FramesPercent = 100 * float64(t.FramesReceived) / float64(t.FramesSent)
		} else {
			t.WorstFramesPercent = 0
		}
		if watch[room] > 0 {
			t.FreezePercent = 100 * frozen[room] / watch[room]
		}
		t.BitrateKbps = dist(bitrates[room]).P50
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b RoomTotals) int { return cmp.Compare(a.Room, b.Room) })
	return out
}

// writeRooms writes the per-room table of a run of more than one room.
func (r *Report) writeRooms(w io.Writer) error {
	if len(r.Rooms) < 2 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "per room\tviewers\tfailed\tleft early\tframes received of sent\tworst viewer\tloss\tlatency p95 (worst viewer)\tfrozen\tbitrate p50\tchat from others\n")
	for _, t := range r.Rooms {
		frames := "-"
		worst := "-"
		if t.FramesSent > 0 {
			frames = fmt.Sprintf("%d of %d (%.2f%%)", t.FramesReceived, t.FramesSent, t.FramesPercent)
			worst = fmt.Sprintf("%.1f%%", t.WorstFramesPercent)
		}
		chat := "-"
		if t.ToOthersExpected > 0 {
			chat = fmt.Sprintf("%d of %d", t.ToOthersReceived, t.ToOthersExpected)
		}
		fmt.Fprintf(tw, "  %s\t%d/%d\t%d\t%d\t%s\t%s\t%.3f%%\t%.1fms\t%.2f%%\t%.0fkbit/s\t%s\n", t.Room, t.Connected, t.Planned,
			t.Failed, t.Departed, frames, worst, t.LossPercent, t.LatencyP95MS, t.FreezePercent, t.BitrateKbps, chat)
	}
	return tw.Flush()
}
