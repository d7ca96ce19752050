package node

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// publishOn publishes a VP8 track over c, an already joined signalling
// connection, and sends keyframes until the test ends.
func publishOn(t *testing.T, ctx context.Context, c *loadtest.Conn) {
	t.Helper()
	pc, offer := wsOffer(t)
	env, err := c.Request(ctx, "publish", loadtest.PublishRequest{SDP: offer})
	if err != nil {
		t.Fatalf("publish on the same socket: %v", err)
	}
	var ans loadtest.SDPMessage
	if err := env.Decode(&ans); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatal(err)
	}
	video := pc.GetTransceivers()[0].Sender().Track().(*webrtc.TrackLocalStaticSample)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		frame := append([]byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, make([]byte, 800)...)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = video.WriteSample(media.Sample{Data: frame, Duration: 40 * time.Millisecond})
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done; _ = pc.Close() })
	// The server's candidates (trickle): apply them as they come.
	go func() {
		for {
			env, err := c.Next(ctx)
			if err != nil {
				return
			}
			var tr loadtest.Trickle
			if env.Type == "trickle" && env.Decode(&tr) == nil && tr.Target == "publisher" && tr.Candidate != nil {
				_ = pc.AddICECandidate(*tr.Candidate)
			}
		}
	}()
}

// A viewer on node b is promoted to publisher by a call on node a: it is
// told (permissions_changed) and publishes on the socket it has, and the
// viewers of the room on both nodes receive it. Demoted, its track is
// unpublished and the room lists one publisher again.
func TestAPI_PromoteAViewerToCoHost(t *testing.T) {
	r := testutil.StartRedis(t)
	secret := strings.Repeat("e5", 20)
	// A republish grace longer than the waits below: a demoted co-host's
	// track must end at once, not be kept for its return.
	node := func(id, region string) *testNode {
		return startNode(t, func(c *config.Config) {
			clusterConfig(t, c, r, id, region, secret)
			c.Room.RepublishGrace = 5 * time.Minute
		})
	}
	a, b := node("node-a", "eu"), node("node-b", "in")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const room = "duet"
	a.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: 150_000})
	onA := a.viewer(ctx, room, "fan-a")
	onB := b.viewer(ctx, room, "fan-b")
	for _, v := range []*loadtest.Viewer{onA, onB} {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	guest, err := wsMember(t, ctx, b, room, "guest", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := guest.Request(ctx, "publish", loadtest.PublishRequest{SDP: "v=0"}); loadtest.ErrorCode(err) != "forbidden" {
		t.Fatalf("a viewer publishing before its promotion: %v, want forbidden", err)
	}

	res := moderate(t, a, "PATCH", "/api/v1/rooms/"+room+"/participants/guest", `{"publish":true}`)
	if !res.Complete || res.Affected != 1 {
		t.Fatalf("promote: %+v", res)
	}
	var pc struct {
		Grants struct{ Publish, Subscribe bool } `json:"grants"`
	}
	if err := json.Unmarshal(nextOfType(t, ctx, guest, "permissions_changed"), &pc); err != nil || !pc.Grants.Publish || !pc.Grants.Subscribe {
		t.Fatalf("permissions_changed %+v (%v), want publish and subscribe", pc, err)
	}
	if status, body := apiCall(t, b, "PATCH", "/api/v1/rooms/"+room+"/participants/guest", b.apiAdmin(), `{"publish":true}`); status != 409 {
		t.Errorf("promoting the promoted: %d %s, want 409 conflict", status, body)
	}
	publishOn(t, ctx, guest)
	for name, v := range map[string]*loadtest.Viewer{"viewer on a": onA, "viewer on b": onB} {
		if err := v.WaitTracks(ctx, 3); err != nil {
			t.Errorf("%s never received the co-host's track: %v", name, err)
		}
	}
	testutil.Eventually(t, "the room lists two publishers", func() bool {
		var one apiRoomBody
		return apiGet(t, a, "/api/v1/rooms/"+room, a.apiAdmin(), &one) == 200 && len(one.Publishers) == 2
	})

	moderate(t, b, "PATCH", "/api/v1/rooms/"+room+"/participants/guest", `{"publish":false}`)
	testutil.Eventually(t, "the demoted co-host's track is unpublished", func() bool {
		var one apiRoomBody
		return apiGet(t, a, "/api/v1/rooms/"+room, a.apiAdmin(), &one) == 200 && len(one.Publishers) == 1 && one.Publishers[0].Identity == "pub-"+room
	})

	status, body := apiCall(t, a, "PATCH", "/api/v1/rooms/"+room+"/participants/nobody", a.apiAdmin(), `{"publish":true}`)
	if status != 404 {
		t.Errorf("promote nobody: %d %s, want 404", status, body)
	}
	status, body = apiCall(t, a, "PATCH", "/api/v1/rooms/"+room+"/participants/guest", a.apiAdmin(), `{"subscribe":true}`)
	if status != 422 {
		t.Errorf("grants without publish: %d %s, want 422", status, body)
	}
}
