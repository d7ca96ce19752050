package main

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// The room's events as an app sees them on the wire.
func TestEvents_AnAppSeesTheRoomChange(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs := n.dial(t, ctx)
	f := false
	if _, err := obs.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("ev", "observer", false, true), AutoSubscribe: &f}); err != nil {
		t.Fatal(err)
	}
	// await reads events until one of type typ matches check.
	await := func(typ string, check func(map[string]any) bool) map[string]any {
		t.Helper()
		for {
			env, err := obs.Next(ctx)
			if err != nil {
				t.Fatalf("waiting for %s: %v", typ, err)
			}
			if env.Type != typ {
				continue
			}
			var d map[string]any
			if err := env.Decode(&d); err != nil {
				t.Fatal(err)
			}
			if check(d) {
				return d
			}
		}
	}
	pub := n.publisher(ctx, "ev", loadtest.PublisherConfig{VideoBitrate: 300_000})
	joined := await("participant_joined", func(d map[string]any) bool {
		p, _ := d["participant"].(map[string]any)
		return p["identity"] == "pub-ev" && p["publisher"] == true && p["id"] != ""
	})
	pubID := joined["participant"].(map[string]any)["id"]
	kinds := map[any]bool{}
	for len(kinds) < 2 {
		d := await("track_published", func(d map[string]any) bool {
			tr, _ := d["track"].(map[string]any)
			return tr["participant_id"] == pubID && tr["id"] != "" && tr["codec"] != ""
		})
		tr := d["track"].(map[string]any)
		kinds[tr["kind"]] = true
		if (tr["kind"] == "video" && tr["source"] != "camera") || (tr["kind"] == "audio" && tr["source"] != "microphone") {
			t.Fatalf("track %v has the wrong source", tr)
		}
	}
	n.viewer(ctx, "ev", "v1")
	await("viewer_count", func(d map[string]any) bool { return d["count"] == float64(1) })
	_ = pub.Close()
	for range 2 {
		await("track_unpublished", func(d map[string]any) bool { return d["participant_id"] == pubID && d["track_id"] != "" })
	}
	await("participant_left", func(d map[string]any) bool { return d["participant_id"] == pubID })
}
