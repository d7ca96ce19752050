package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
	"github.com/halobuzz/live/signaling/webhook"
)

// types lists the types of evs, for messages.
func types(evs []webhook.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%d:%s ", e.Seq, e.Type)
	}
	return b.String()
}

// checkRoomLife checks what a receiver got of one room's whole life: each
// event once (ids unique), numbered 1, 2, 3... in order of arrival, opened
// by room_started and closed by room_finished, the broadcast between them
// (broadcast_started before the first track_published, broadcast_ended
// after the last track_unpublished), with at least one viewer_count of
// viewers while it was live.
func checkRoomLife(t *testing.T, room string, evs []webhook.Event, tracks, viewers int) {
	t.Helper()
	ids := map[string]bool{}
	index := map[string][]int{}
	for i, e := range evs {
		if ids[e.ID] {
			t.Errorf("room %s: event %s delivered twice", room, e.ID)
		}
		ids[e.ID] = true
		if e.Seq != int64(i+1) {
			t.Errorf("room %s: event %d has seq %d (arrival order is not the room's order, or one is missing): %s", room, i+1, e.Seq, types(evs))
		}
		if e.Room != room || e.Node == "" || e.Region == "" || e.Time.IsZero() {
			t.Errorf("room %s: event %+v lacks its room, node, region or time", room, e)
		}
		index[e.Type] = append(index[e.Type], i)
	}
	if t.Failed() {
		return
	}
	first := func(typ string) int {
		if l := index[typ]; len(l) > 0 {
			return l[0]
		}
		t.Fatalf("room %s: no %s in %s", room, typ, types(evs))
		return -1
	}
	last := func(typ string) int { l := index[typ]; first(typ); return l[len(l)-1] }
	if len(index[webhook.RoomStarted]) != 1 || first(webhook.RoomStarted) != 0 {
		t.Errorf("room %s: room_started is not once and first: %s", room, types(evs))
	}
	if len(index[webhook.RoomFinished]) != 1 || first(webhook.RoomFinished) != len(evs)-1 {
		t.Errorf("room %s: room_finished is not once and last: %s", room, types(evs))
	}
	if len(index[webhook.BroadcastStarted]) != 1 || len(index[webhook.BroadcastEnded]) != 1 {
		t.Errorf("room %s: broadcast_started and broadcast_ended not once each: %s", room, types(evs))
	}
	if n := len(index[webhook.TrackPublished]); n != tracks || len(index[webhook.TrackUnpublished]) != tracks {
		t.Errorf("room %s: %d track_published, %d track_unpublished; want %d each: %s", room, n, len(index[webhook.TrackUnpublished]), tracks, types(evs))
	}
	if !(first(webhook.BroadcastStarted) < first(webhook.TrackPublished) &&
		last(webhook.TrackPublished) < first(webhook.ViewerCount) &&
		last(webhook.TrackUnpublished) < first(webhook.BroadcastEnded) &&
		first(webhook.BroadcastEnded) < first(webhook.RoomFinished)) {
		t.Errorf("room %s: out of order: %s", room, types(evs))
	}
	saw := false
	for _, i := range index[webhook.ViewerCount] {
		if e := evs[i]; e.Viewers != nil && *e.Viewers == viewers && i < first(webhook.BroadcastEnded) {
			saw = true
		}
	}
	if !saw {
		t.Errorf("room %s: no viewer_count of %d while live: %s", room, viewers, types(evs))
	}
	for _, i := range index[webhook.TrackPublished] {
		if e := evs[i]; e.Track == nil || e.Track.ID == "" || e.Participant == nil || e.Participant.Role != "publisher" {
			t.Errorf("room %s: track_published without its track and publisher: %+v", room, e)
		}
	}
}

// broadcastLife runs one broadcast in room on n: a publisher (audio and
// video), viewers that watch it, then the publisher leaves, then the
// viewers; it returns once the receiver has the room's room_finished.
func broadcastLife(ctx context.Context, t *testing.T, n *testNode, r *receiver, room string, viewers int) {
	t.Helper()
	pub := n.publisher(ctx, room, loadtest.PublisherConfig{VideoBitrate: testBitrate})
	var vs []*loadtest.Viewer
	for i := range viewers {
		v := n.viewer(ctx, room, fmt.Sprintf("viewer-%d", i))
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
		vs = append(vs, v)
	}
	testutil.EventuallyWithin(t, time.Minute, "a viewer_count of "+fmt.Sprint(viewers)+" delivered", func() bool {
		for _, e := range r.ofRoom(room) {
			if e.Type == webhook.ViewerCount && e.Viewers != nil && *e.Viewers == viewers {
				return true
			}
		}
		return false
	})
	_ = pub.Close()
	testutil.EventuallyWithin(t, time.Minute, "broadcast_ended delivered", func() bool { return r.has(room, webhook.BroadcastEnded) })
	for _, v := range vs {
		_ = v.Close()
	}
}

// TestWebhooks_BroadcastLifeInOrder: a node alone (its queue in memory)
// tells a receiver that checks every signature the whole life of a
// broadcast, in order: room_started, broadcast_started, track_published
// (audio and video), viewer_count, track_unpublished, broadcast_ended,
// room_finished, each once, numbered 1, 2, 3...
func TestWebhooks_BroadcastLifeInOrder(t *testing.T) {
	r := startReceiver(t)
	n := startNode(t, webhookConfig(r))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	broadcastLife(ctx, t, n, r, "show", 2)
	testutil.EventuallyWithin(t, time.Minute, "room_finished delivered", func() bool { return r.has("show", webhook.RoomFinished) })
	checkRoomLife(t, "show", r.ofRoom("show"), 2, 2)
	for _, e := range r.ofRoom("show") {
		if (e.Type == webhook.ParticipantJoined || e.Type == webhook.ParticipantLeft) && e.Participant.Role != "publisher" {
			t.Errorf("a viewer's %s delivered with webhooks.viewer_events off: %+v", e.Type, e.Participant)
		}
	}
	if !r.has("show", webhook.ParticipantJoined) || !r.has("show", webhook.ParticipantLeft) {
		t.Errorf("the publisher's participant_joined/left missing: %s", types(r.ofRoom("show")))
	}
	t.Logf("events: %s", types(r.ofRoom("show")))
}

// counter reads a counter of the node's registry with the given labels.
func counter(t *testing.T, n *testNode, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := n.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestWebhooks_ReceiverDownThirtySeconds_GetsEverythingInOrder: the
// receiver goes down for 30 s (its port refuses connections) in the middle
// of one broadcast and for the whole of another; when it is back it gets
// every event of both rooms, each once, in order, the node having retried
// with back-off meanwhile (retry_initial 1s, retry_max 5s: the real outage,
// shorter waits than the defaults' 5m cap).
func TestWebhooks_ReceiverDownThirtySeconds_GetsEverythingInOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s outage")
	}
	r := startReceiver(t)
	n := startNode(t, func(c *config.Config) {
		webhookConfig(r)(c)
		c.Webhooks.RetryInitial, c.Webhooks.RetryMax = time.Second, 5*time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pubA := n.publisher(ctx, "before", loadtest.PublisherConfig{VideoBitrate: testBitrate})
	va := n.viewer(ctx, "before", "viewer-a")
	if err := va.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWithin(t, time.Minute, "the first broadcast's viewer_count delivered", func() bool {
		return r.has("before", webhook.ViewerCount)
	})
	r.down()
	downAt := time.Now()
	_ = pubA.Close()
	_ = va.Close()
	// A whole broadcast while the receiver is down.
	pubB := n.publisher(ctx, "during", loadtest.PublisherConfig{VideoBitrate: testBitrate})
	vb := n.viewer(ctx, "during", "viewer-b")
	if err := vb.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the audience of one is counted (every 200 ms)
	_ = pubB.Close()
	_ = vb.Close()
	testutil.EventuallyWithin(t, time.Minute, "deliveries failing while the receiver is down", func() bool {
		return counter(t, n, "halo_webhook_deliveries_total", map[string]string{"result": "failed"}) >= 2
	})
	time.Sleep(30*time.Second - time.Since(downAt))
	if len(r.ofRoom("during")) != 0 {
		t.Fatal("events delivered while the receiver was down")
	}
	r.up()
	for _, room := range []string{"before", "during"} {
		testutil.EventuallyWithin(t, time.Minute, room+": room_finished delivered", func() bool { return r.has(room, webhook.RoomFinished) })
		checkRoomLife(t, room, r.ofRoom(room), 2, 1)
		t.Logf("%s: %s", room, types(r.ofRoom(room)))
	}
	if got := counter(t, n, "halo_webhook_deliveries_total", map[string]string{"result": "expired"}); got != 0 {
		t.Errorf("%v deliveries expired", got)
	}
	t.Logf("failed attempts during the outage: %v", counter(t, n, "halo_webhook_deliveries_total", map[string]string{"result": "failed"}))
}

// TestWebhooks_CleanStopEndsTheBroadcastAndTheRoom: a node alone stopped
// (SIGTERM's drain) during a broadcast tells node_draining, then the
// broadcast's and the room's end, before it exits: nothing is left
// started.
func TestWebhooks_CleanStopEndsTheBroadcastAndTheRoom(t *testing.T) {
	r := startReceiver(t)
	cfg := testutil.NodeConfig()
	webhookConfig(r)(cfg)
	cfg.Room.EmptyTimeout = time.Minute // the room would outlive the node
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n := newStartedNode(t, cfg, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub := n.publisher(ctx, "live", loadtest.PublisherConfig{VideoBitrate: testBitrate})
	defer pub.Close()
	testutil.EventuallyWithin(t, time.Minute, "the broadcast's track_published delivered", func() bool {
		n := 0
		for _, e := range r.ofRoom("live") {
			if e.Type == webhook.TrackPublished {
				n++
			}
		}
		return n == 2
	})
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := n.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	evs := r.ofRoom("live")
	want := []string{webhook.RoomStarted, webhook.ParticipantJoined, webhook.BroadcastStarted, webhook.TrackPublished, webhook.TrackPublished,
		webhook.TrackUnpublished, webhook.TrackUnpublished, webhook.BroadcastEnded, webhook.ParticipantLeft, webhook.RoomFinished}
	if len(evs) != len(want) {
		t.Fatalf("got %s; want %v", types(evs), want)
	}
	for i, e := range evs {
		if e.Type != want[i] || e.Seq != int64(i+1) {
			t.Fatalf("got %s; want %v", types(evs), want)
		}
	}
	draining := false
	for _, e := range r.all() {
		draining = draining || e.Type == webhook.NodeDraining
	}
	if !draining {
		t.Error("no node_draining delivered")
	}
}

// A moderator's removal reaches the app's backend: participant_removed,
// with the participant and the reason given to the server API.
func TestWebhooks_RemovalIsDelivered(t *testing.T) {
	r := startReceiver(t)
	n := startNode(t, webhookConfig(r))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const room = "moderated"
	if _, err := wsMember(t, ctx, n, room, "troll", false); err != nil {
		t.Fatal(err)
	}
	if status, body := apiCall(t, n, "DELETE", "/api/v1/rooms/"+room+"/participants/troll?reason=spam", n.apiAdmin(), ""); status != 200 {
		t.Fatalf("remove: %d %s", status, body)
	}
	testutil.EventuallyWithin(t, 30*time.Second, "participant_removed delivered", func() bool { return r.has(room, webhook.ParticipantRemoved) })
	for _, e := range r.ofRoom(room) {
		if e.Type == webhook.ParticipantRemoved && (e.Participant == nil || e.Participant.Identity != "troll" || e.Reason != "spam") {
			t.Errorf("participant_removed %+v (participant %+v), want troll removed for spam", e, e.Participant)
		}
	}
}
