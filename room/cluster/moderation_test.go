package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/room"
)

// Bans on a real Redis: read back until they end, the room's broadcast
// ban apart, and the key lasts as long as the longest ban.
func TestRedisBans_HoldUntilTheyEnd(t *testing.T) {
	srv := testutil.StartRedis(t)
	node := redisNodes(t, srv, time.Second)
	a, b := node("a").(*RedisStore), node("b").(*RedisStore)
	ctx := context.Background()
	now := time.Now()
	for who, d := range map[string]time.Duration{"troll": 600 * time.Millisecond, "spammer": time.Hour, "": time.Minute} {
		if err := a.PutBan(ctx, "show", who, now.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Bans(ctx, "show")
	if err != nil || len(got.Identities) != 2 || got.Broadcast.IsZero() {
		t.Fatalf("bans read on another node: %+v %v, want troll, spammer and a broadcast ban", got, err)
	}
	testutil.Eventually(t, "troll's ban to end while spammer's holds", func() bool {
		got, err := b.Bans(ctx, "show")
		_, troll := got.Identities["troll"]
		_, spammer := got.Identities["spammer"]
		return err == nil && !troll && spammer
	})
	if ttl := redisClient(t, srv).PTTL(ctx, a.bansKey("show")).Val(); ttl < 50*time.Minute {
		t.Errorf("the bans key expires in %v, before its longest ban", ttl)
	}
	if other, err := b.Bans(ctx, "other"); err != nil || len(other.Identities) != 0 || !other.Broadcast.IsZero() {
		t.Errorf("another room's bans: %+v %v, want none", other, err)
	}
}

// A moderation event read from a room channel is outside input: only
// complete ones of a known kind pass.
func TestParseWireEvent_Moderation(t *testing.T) {
	base := wireEvent{V: 1, Node: "n", Boot: "b", Seq: 1}
	for _, c := range []struct {
		name string
		typ  string
		mod  *modWire
		ok   bool
	}{
		{"remove", evModerate, &modWire{Req: "m_1", Kind: room.ActRemove, Identity: "x", BanUntil: 1}, true},
		{"end", evModerate, &modWire{Req: "m_1", Kind: room.ActEnd}, true},
		{"answer", evModerateAck, &modWire{Req: "m_1", Affected: 3}, true},
		{"no mod", evModerate, nil, false},
		{"no request id", evModerate, &modWire{Kind: room.ActEnd}, false},
		{"unknown kind", evModerate, &modWire{Req: "m_1", Kind: "explode"}, false},
		{"remove nobody", evModerate, &modWire{Req: "m_1", Kind: room.ActRemove}, false},
		{"negative count", evModerateAck, &modWire{Req: "m_1", Affected: -1}, false},
		{"long identity", evModerate, &modWire{Req: "m_1", Kind: room.ActRemove, Identity: strings.Repeat("x", 600)}, false},
		{"long request id", evModerateAck, &modWire{Req: strings.Repeat("m", 65)}, false},
	} {
		ev := base
		ev.Type, ev.Mod = c.typ, c.mod
		b, _ := json.Marshal(ev)
		_, err := parseWireEvent(b)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, errBadEvent)) {
			t.Errorf("%s: %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
