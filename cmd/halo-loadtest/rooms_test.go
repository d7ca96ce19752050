package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A scenario of several rooms breaks its report down by room, so the room
// that suffered shows: against a real node, viewers behind a 400 kbit/s
// link watch one room of 150 kbit/s (served well) and one of 1200 kbit/s
// (starved); the run fails, and the per-room figures (JSON and table) put
// the loss in the big room only.
func TestRun_ScenarioReportBreaksDownByRoom(t *testing.T) {
	srv := startServer(t)
	dir := t.TempDir()
	scenario := filepath.Join(dir, "rooms.yaml")
	const yaml = `name: rooms test
duration: 3s
ramp: 1000
room_prefix: split
rooms:
  - {count: 1, publishers: 1, viewers: 2, publisher: {video_kbps: 150, fps: 15}}
  - {count: 1, publishers: 1, viewers: 2, publisher: {video_kbps: 1200, fps: 15}}
`
	if err := os.WriteFile(scenario, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "rooms.json")
	code, stdout, stderr := runCmd(t, context.Background(), "--scenario", scenario, "--secret", srv.secret,
		"--url", srv.wsURL, "--viewer-link-kbps", "400", "--json", out)
	t.Logf("run:\n%s%s", stdout, stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the big room's viewers are starved)", code)
	}
	rep := readJSON(t, out)
	if len(rep.Rooms) != 2 {
		t.Fatalf("rooms %+v", rep.Rooms)
	}
	small, big := rep.Rooms[0], rep.Rooms[1] // by name: split-1 is the first group's
	t.Logf("small %+v\nbig %+v", small, big)
	for _, r := range rep.Rooms {
		if r.Planned != 2 || r.Connected != 2 || r.FramesSent == 0 {
			t.Errorf("room %+v", r)
		}
	}
	if small.FramesPercent < 99 || small.WorstFramesPercent < 99 {
		t.Errorf("the small room's viewers were served well, its figures say %.1f%% (worst %.1f%%)", small.FramesPercent, small.WorstFramesPercent)
	}
	if small.LossPercent >= 1 || big.LossPercent < 10 || small.Lost+big.Lost != rep.Received.Lost {
		t.Errorf("loss after repair: small room %.2f%%, big room %.2f%% (the link drops a third of its 1200 kbit/s), run %d lost",
			small.LossPercent, big.LossPercent, rep.Received.Lost)
	}
	if small.FramesSent+big.FramesSent != rep.Received.FramesSent || small.FramesReceived+big.FramesReceived != rep.Received.FramesReceived {
		t.Errorf("rooms' frames do not add up to the run's: %+v", rep.Received)
	}
	table := stdout[strings.Index(stdout, "per room"):]
	for _, r := range rep.Rooms {
		if !strings.Contains(table, r.Room) {
			t.Errorf("the table's per-room section lacks %s:\n%s", r.Room, table)
		}
	}
}
