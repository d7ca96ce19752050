package node

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// Moderating a track across two nodes: the broadcast is published on a, a
// viewer watches on b, the calls go to b. A muted video track stops
// reaching the viewer (its audio goes on) and everyone in the room on both
// nodes is told (track_muted, the publisher's participant id); unmuted it
// plays again; an unpublished track ends on both nodes; an unknown track is
// 404. Every response is checked against the OpenAPI document.
func TestAPI_MuteUnmuteAndUnpublishATrack(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("a7", 20)
	a := startClusterNode(t, r, "node-a", "eu", secret)
	b := startClusterNode(t, r, "node-b", "eu", secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "moderated-tracks"
	pub := a.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := b.viewer(ctx, room, "viewer-on-b")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	obsA, obsB := observe(t, ctx, a, room), observe(t, ctx, b, room)
	var video, audio string
	for _, tr := range a.rooms.Room(room).Tracks() {
		switch tr.Kind {
		case "video":
			video = tr.ID
		case "audio":
			audio = tr.ID
		}
	}
	if video == "" || audio == "" {
		t.Fatalf("tracks on a: %+v", a.rooms.Room(room).Tracks())
	}
	admin := b.apiAdmin()
	call := func(method, path string) apiModerationBody {
		t.Helper()
		status, body := apiCall(t, b, method, path, admin, "")
		var res apiModerationBody
		if status != 200 || json.Unmarshal(body, &res) != nil || res.Affected != 1 || !res.Complete {
			t.Fatalf("%s %s: %d %s, want 200 applied once", method, path, status, body)
		}
		return res
	}
	// received counts what the viewer gets over d.
	received := func(d time.Duration) (videoPkts, audioPkts uint64) {
		s0 := v.Stats()
		time.Sleep(d)
		s1 := v.Stats()
		return s1.VideoPackets - s0.VideoPackets, s1.AudioPackets - s0.AudioPackets
	}

	call("POST", "/api/v1/rooms/"+room+"/tracks/"+video+"/mute")
	time.Sleep(500 * time.Millisecond) // what was on its way
	if vp, ap := received(1500 * time.Millisecond); vp > 3 || ap < 20 {
		t.Fatalf("muted video: the viewer got %d video and %d audio packets in 1.5 s, want no video and the audio", vp, ap)
	}
	for name, o := range map[string]*observer{"a": obsA, "b": obsB} {
		testutil.Eventually(t, "track_muted on "+name, func() bool { _, ok := o.find("track_muted"); return ok })
		data, _ := o.find("track_muted")
		var ev struct {
			TrackID       string `json:"track_id"`
			ParticipantID string `json:"participant_id"`
			Muted         bool   `json:"muted"`
		}
		if json.Unmarshal(data, &ev) != nil || ev.TrackID != video || !ev.Muted || ev.ParticipantID != pub.ParticipantID() {
			t.Errorf("track_muted on %s: %s, want the video track of %s muted", name, data, pub.ParticipantID())
		}
	}

	call("POST", "/api/v1/rooms/"+room+"/tracks/"+video+"/unmute")
	testutil.Eventually(t, "the video plays again after the unmute", func() bool {
		vp, _ := received(300 * time.Millisecond)
		return vp > 10
	})

	call("DELETE", "/api/v1/rooms/"+room+"/tracks/"+audio)
	for _, n := range []*testNode{a, b} {
		testutil.Eventually(t, "the audio track ends on "+n.cfg.Node.ID, func() bool {
			for _, id := range trackIDs(n, room) {
				if id == audio {
					return false
				}
			}
			return true
		})
	}
	time.Sleep(500 * time.Millisecond)
	if vp, ap := received(time.Second); ap > 3 || vp < 10 {
		t.Errorf("after unpublishing the audio: %d video and %d audio packets in 1 s, want video only", vp, ap)
	}
	if status, body := apiCall(t, b, "POST", "/api/v1/rooms/"+room+"/tracks/t_nosuch/mute", admin, ""); status != 404 {
		t.Errorf("muting an unknown track: %d %s, want 404", status, body)
	}
}
