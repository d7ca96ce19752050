package node

import (
	"context"
	"testing"
	"time"

	"github.com/halobuzz/live/loadtest"
)

// observed is what an app's socket saw, event by event.
type observed struct {
	t     *testing.T
	ctx   context.Context
	conn  *loadtest.Conn
	types []string
	data  []map[string]any
}

// await reads events until one of type typ matches check.
func (o *observed) await(typ string, check func(map[string]any) bool) map[string]any {
	o.t.Helper()
	for {
		env, err := o.conn.Next(o.ctx)
		if err != nil {
			o.t.Fatalf("waiting for %s: %v", typ, err)
		}
		var d map[string]any
		if err := env.Decode(&d); err != nil {
			o.t.Fatal(err)
		}
		o.types = append(o.types, env.Type)
		o.data = append(o.data, d)
		if env.Type == typ && check(d) {
			return d
		}
	}
}

// announced returns the participant ids of the participant_joined and
// participant_left events seen.
func (o *observed) announced() (joined, left []any) {
	for i, typ := range o.types {
		switch typ {
		case loadtest.TypeParticipantJoined:
			p, _ := o.data[i]["participant"].(map[string]any)
			joined = append(joined, p["identity"])
		case loadtest.TypeParticipantLeft:
			left = append(left, o.data[i]["participant_id"])
		}
	}
	return joined, left
}

// The room's events as an app sees them on the wire. Viewers are an
// audience: they are counted, not announced; a participant is announced
// when it publishes.
func TestEvents_AnAppSeesTheRoomChange(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := false
	joinConn := func(identity string, publish bool) (*loadtest.Conn, loadtest.Joined) {
		t.Helper()
		c := n.dial(t, ctx)
		env, err := c.Request(ctx, "join", loadtest.JoinRequest{Token: n.token("ev", identity, publish, true), AutoSubscribe: &f})
		if err != nil {
			t.Fatal(err)
		}
		var j loadtest.Joined
		if err := env.Decode(&j); err != nil {
			t.Fatal(err)
		}
		return c, j
	}
	obsConn, _ := joinConn("observer", false)
	obs := &observed{t: t, ctx: ctx, conn: obsConn}
	// One that may publish but only watches yet, and three viewers with
	// media: none of them is announced.
	joinConn("lurker", true)
	for _, id := range []string{"v1", "v2", "v3"} {
		n.viewer(ctx, "ev", id)
	}
	obs.await("viewer_count", func(d map[string]any) bool { return d["count"] == float64(3) })

	pub := n.publisher(ctx, "ev", loadtest.PublisherConfig{VideoBitrate: 300_000})
	joined := obs.await("participant_joined", func(d map[string]any) bool {
		p, _ := d["participant"].(map[string]any)
		return p["identity"] == "pub-ev" && p["publisher"] == true && p["id"] != ""
	})
	pubID := joined["participant"].(map[string]any)["id"]
	kinds := map[any]bool{}
	for len(kinds) < 2 {
		d := obs.await("track_published", func(d map[string]any) bool {
			tr, _ := d["track"].(map[string]any)
			return tr["participant_id"] == pubID && tr["id"] != "" && tr["codec"] != ""
		})
		tr := d["track"].(map[string]any)
		kinds[tr["kind"]] = true
		if (tr["kind"] == "video" && tr["source"] != "camera") || (tr["kind"] == "audio" && tr["source"] != "microphone") {
			t.Fatalf("track %v has the wrong source", tr)
		}
	}
	// A late joiner's joined lists the publisher and the count, not the
	// audience.
	_, late := joinConn("late", false)
	if len(late.Participants) != 1 || late.Participants[0].ID != pubID || late.Participants[0].Identity != "pub-ev" {
		t.Fatalf("joined lists %+v; want only the publisher %v", late.Participants, pubID)
	}
	if late.ViewerCount != 3 || len(late.Tracks) != 2 {
		t.Fatalf("joined: viewer_count %d, %d tracks; want 3 and 2", late.ViewerCount, len(late.Tracks))
	}

	n.viewer(ctx, "ev", "v4")
	obs.await("viewer_count", func(d map[string]any) bool { return d["count"] == float64(4) })
	_ = pub.Close()
	for range 2 {
		obs.await("track_unpublished", func(d map[string]any) bool { return d["participant_id"] == pubID && d["track_id"] != "" })
	}
	obs.await("participant_left", func(d map[string]any) bool { return d["participant_id"] == pubID })

	ids, left := obs.announced()
	if len(ids) != 1 || ids[0] != "pub-ev" || len(left) != 1 {
		t.Fatalf("announced: joined %v, left %v; want only the publisher", ids, left)
	}
	// The publisher's tracks come after it was announced.
	for i, typ := range obs.types {
		if typ == loadtest.TypeParticipantJoined {
			break
		}
		if typ == loadtest.TypeTrackPublished {
			t.Fatalf("track_published (event %d) before the publisher's participant_joined", i)
		}
	}
}
