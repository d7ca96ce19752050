package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
)

// A chat and a reaction from another node carry the sender's identity (the
// token's sub), so an app on any node can moderate the person. Identities
// and names are up to 128 characters of up to 4 bytes each: the longest
// crosses too.
func TestCluster_ChatAndReactionCarryTheSendersIdentity(t *testing.T) {
	srv := testutil.StartRedis(t)
	prefix := clusterPrefix()
	a, _ := newClusterNode(t, srv, prefix, "a", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	b, _ := newClusterNode(t, srv, prefix, "b", room.Options{Room: config.RoomConfig{EmptyTimeout: time.Hour}})
	var onA, onB recorder
	if _, err := b.Join("live", room.ParticipantSpec{Identity: "watcher", Subscribe: true}, &onB); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, b, "live")
	for _, who := range []struct{ identity, name string }{
		{"user-42", "Host"},
		{strings.Repeat("😀", 128), strings.Repeat("名", 128)}, // 512 and 384 bytes
	} {
		p, err := a.Join("live", room.ParticipantSpec{Identity: who.identity, Name: who.name, Publish: true}, &onA)
		if err != nil {
			t.Fatal(err)
		}
		waitLinked(t, a, "live")
		if err := p.Chat("hello"); err != nil {
			t.Fatal(err)
		}
		if err := p.React("👏"); err != nil {
			t.Fatal(err)
		}
		for _, rec := range []struct {
			node string
			r    *recorder
		}{{"a (local)", &onA}, {"b (other node)", &onB}} {
			testutil.Eventually(t, "the chat and the reaction reach "+rec.node+" with the identity", func() bool {
				return rec.r.has(func(ev room.Event) bool {
					c, ok := ev.(room.Chat)
					return ok && c.ParticipantID == p.ID() && c.Identity == who.identity && c.Name == who.name && c.Text == "hello"
				}) && rec.r.has(func(ev room.Event) bool {
					r, ok := ev.(room.Reaction)
					return ok && r.ParticipantID == p.ID() && r.Identity == who.identity && r.Name == who.name
				})
			})
		}
	}
}
