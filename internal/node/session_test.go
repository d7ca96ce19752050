package node

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/loadtest"
)

// A viewer who joins long after the last keyframe still starts on a
// keyframe, replayed from the cache, without the broadcaster having to send a
// new one.
func TestLateJoiner_StartsOnCachedKeyframe(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := n.publisher(ctx, "late", loadtest.PublisherConfig{VideoBitrate: 300_000, KeyframeInterval: time.Hour})
	first := n.viewer(ctx, "late", "early")
	if err := first.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Let the picture age: several hundred delta frames after the keyframe.
	testutil.Eventually(t, "publisher sends 60 frames past its keyframes", func() bool {
		s := pub.Stats()
		return s.VideoFrames > s.Keyframes+60
	})
	keyframesBefore := pub.Stats().Keyframes
	late := n.viewer(ctx, "late", "late")
	if err := late.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "late viewer receives a keyframe", func() bool { return late.Stats().Keyframes > 0 })
	s := late.Stats()
	if !s.FirstVideoIsKeyframe {
		t.Fatalf("late viewer's first video frame was not a keyframe: %+v", s)
	}
	if got := pub.Stats().Keyframes; got != keyframesBefore {
		t.Errorf("publisher had to send %d new keyframes; the late joiner should start from the cache", got-keyframesBefore)
	}
	if n.engine.Stats().Replays == 0 {
		t.Error("engine reports no keyframe replay")
	}
}

// A viewer who leaves stops costing anything: its down-tracks are gone, and
// the others keep receiving.
func TestViewerLeave_ReleasesItsDownTracks(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n.publisher(ctx, "leave", loadtest.PublisherConfig{VideoBitrate: 300_000})
	stay := n.viewer(ctx, "leave", "stay")
	gone := n.viewer(ctx, "leave", "gone")
	for _, v := range []*loadtest.Viewer{stay, gone} {
		if err := v.WaitTracks(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, "4 down-tracks bound", func() bool { return n.engine.Stats().DownTracks == 4 })
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the leaver's down-tracks released", func() bool {
		s := n.engine.Stats()
		return s.DownTracks == 2 && s.Subscribers == 1
	})
	testutil.Eventually(t, "viewer count event of 1", func() bool { return n.rooms.Room("leave").ViewerCount() == 1 })
	before := stay.Stats().VideoPackets
	testutil.Eventually(t, "the remaining viewer keeps receiving", func() bool { return stay.Stats().VideoPackets > before+50 })
}

// When the broadcaster leaves, its tracks are unpublished and viewers'
// down-tracks released; the empty room is removed after its grace period.
func TestPublisherLeave_UnpublishesAndRoomIsRemoved(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub := n.publisher(ctx, "bye", loadtest.PublisherConfig{VideoBitrate: 300_000})
	v := n.viewer(ctx, "bye", "v")
	if err := v.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_ = pub.Close()
	testutil.Eventually(t, "tracks unpublished and down-tracks released", func() bool {
		s := n.engine.Stats()
		return s.Tracks == 0 && s.DownTracks == 0 && len(n.rooms.Room("bye").Tracks()) == 0
	})
	_ = v.Close()
	testutil.Eventually(t, "empty room removed", func() bool { return n.rooms.Room("bye") == nil })
}

// Two rooms on one node share nothing: a viewer of one never receives the
// other's media.
func TestRooms_AreIsolated(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n.publisher(ctx, "red", loadtest.PublisherConfig{VideoBitrate: 300_000})
	red := n.viewer(ctx, "red", "r")
	blue := n.viewer(ctx, "blue", "b")
	if err := red.WaitTracks(ctx, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // blue would have been offered red's tracks by now
	if s := blue.Stats(); s.Tracks != 0 || s.VideoPackets != 0 || s.AudioPackets != 0 {
		t.Fatalf("viewer in another room received media: %+v", s)
	}
	if got := len(n.rooms.Room("blue").Tracks()); got != 0 {
		t.Fatalf("room blue lists %d tracks", got)
	}
}

// A broadcaster with two cameras and a microphone: viewers get all three.
func TestMultiCamera_ViewersGetEveryTrack(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n.publisher(ctx, "multi", loadtest.PublisherConfig{VideoBitrate: 300_000, VideoTracks: 2, Sources: []string{"camera", "screen"}})
	v := n.viewer(ctx, "multi", "v")
	if err := v.WaitTracks(ctx, 3); err != nil {
		t.Fatalf("%v (stats %+v)", err, v.Stats())
	}
	sources := map[string]int{}
	for _, tr := range n.rooms.Room("multi").Tracks() {
		sources[tr.Source]++
	}
	if sources["camera"] != 1 || sources["screen"] != 1 || sources["microphone"] != 1 {
		t.Fatalf("track sources = %v", sources)
	}
	testutil.Eventually(t, "both video tracks start on a keyframe", func() bool { return v.Stats().KeyframeFirstTracks == 2 })
}
