package testutil

import (
	"context"
	"testing"
	"time"
)

// Wait is how long Eventually waits: long enough for any liveness check on
// a busy two-core machine under the race detector. Tests check that
// something happens at all, never how fast.
const Wait = 15 * time.Second

// Eventually polls cond until it holds, failing t after Wait.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, Wait, what, cond)
}

// EventuallyWithin is Eventually for a condition that takes long by itself
// (ten scrapes a second apart, say).
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// EventuallyCtx polls cond every 100 ms until it holds, failing t when ctx
// ends first. The gap is wide enough for a cond that asks the server (a
// stats request) not to trip its per-socket rate limit.
func EventuallyCtx(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
