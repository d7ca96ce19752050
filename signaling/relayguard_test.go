package signaling

import (
	"fmt"
	"testing"
	"time"
)

// The replay guard refuses an id seen before while its token is valid,
// forgets ids in the order their tokens expire, and never holds more than
// its bound: when full of unexpired ids it refuses new ones rather than
// forget one that could still be replayed.
func TestReplayGuard_RefusesSecondUseForgetsInExpiryOrderStaysBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	g := newReplayGuard(3)
	// Expiries out of insertion order: c first, then a, then b.
	for _, u := range []struct {
		id  string
		exp time.Duration
	}{{"a", 20 * time.Second}, {"b", 30 * time.Second}, {"c", 10 * time.Second}} {
		if v := g.use(u.id, now.Add(u.exp), now); v != idFresh {
			t.Fatalf("first use of %s: %v", u.id, v)
		}
	}
	if v := g.use("a", now.Add(20*time.Second), now.Add(time.Second)); v != idReplayed {
		t.Fatalf("second use of a: %v, want replayed", v)
	}
	if v := g.use("d", now.Add(30*time.Second), now.Add(time.Second)); v != idFull {
		t.Fatalf("a fourth id while three are unexpired: %v, want full", v)
	}
	// c's token (and the clock skew Verify allows) is over: c goes, a and b stay.
	later := now.Add(10*time.Second + relayClockSkew)
	if v := g.use("d", later.Add(30*time.Second), later); v != idFresh {
		t.Fatalf("d once c expired: %v", v)
	}
	for id, want := range map[string]guardVerdict{"a": idReplayed, "b": idReplayed, "d": idReplayed} {
		if v := g.use(id, later.Add(time.Minute), later); v != want {
			t.Errorf("%s after c expired: %v, want %v", id, v, want)
		}
	}
	// Long after every token expired, nothing is remembered.
	end := now.Add(time.Hour)
	for i := range 3 {
		if v := g.use(fmt.Sprint("late", i), end.Add(time.Second), end); v != idFresh {
			t.Fatalf("late%d: %v", i, v)
		}
	}
	if n := g.size(); n != 3 {
		t.Fatalf("%d ids remembered, want 3", n)
	}
}
