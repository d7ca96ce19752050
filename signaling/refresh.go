package signaling

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// A WebSocket session lives on its token: signaling.token_refresh_lead
// before the token's exp (at most half its remaining life) the server sends
// token_expiring; the client answers with refresh and a fresh token for the
// same identity and room, whose grants then apply, or at exp the session
// ends with token_expired. WHIP/WHEP sessions have no channel to ask on and
// keep the grants they started with.

// tokenClock holds the two timers of a session's token. Its methods are
// safe to call from the reader and from the timers' goroutines.
type tokenClock struct {
	identity, room string // who joined: a refresh must name the same

	mu      sync.Mutex
	exp     time.Time
	warn    *time.Timer
	expire  *time.Timer
	stopped bool
}

// arm (re)starts the timers for a token expiring at exp.
func (t *tokenClock) arm(c *wsClient, exp time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopLocked()
	if t.stopped {
		return
	}
	t.exp = exp
	left := max(time.Until(exp), 0)
	lead := min(c.s.cfg.Signaling.TokenRefreshLead, left/2)
	t.warn = time.AfterFunc(left-lead, func() {
		if !t.current(exp) || left == 0 {
			return
		}
		c.enqueue(encode("token_expiring", 0, tokenExpiringData{
			Exp: exp.Unix(), SecondsLeft: int64(math.Ceil(time.Until(exp).Seconds())),
		}))
	})
	t.expire = time.AfterFunc(left, func() {
		// A timer that fired as a refresh re-armed the clock must not end
		// the refreshed session.
		if t.current(exp) {
			c.fail(newError(CodeTokenExpired, "the token expired without a refresh; join again with a fresh token"))
		}
	})
}

// current reports whether exp is still the expiry the session runs on.
func (t *tokenClock) current(exp time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.stopped && t.exp.Equal(exp)
}

func (t *tokenClock) stopLocked() {
	if t.warn != nil {
		t.warn.Stop()
		t.expire.Stop()
	}
}

// stop ends the timers for good (the session is over).
func (t *tokenClock) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopLocked()
	t.stopped = true
}

// refresh applies a fresh token: verified as at join, for the same identity
// and room. Its expiry and grants replace the old ones. A refused token is
// not fatal: the session goes on until the old token's exp.
func (c *wsClient) refresh(env envelope) error {
	var d refreshData
	if e := decodeData(env, &d); e != nil {
		return e
	}
	spec, _, claims, err := c.s.verify(d.Token, c.token.room, time.Now())
	if err != nil {
		w := *toWire(err)
		w.Fatal = false
		logWire(c.log, "refresh refused", err, &w)
		return &w
	}
	if claims.Identity != c.token.identity {
		return newError(CodeForbidden, fmt.Sprintf("the token is for identity %q, not %q", claims.Identity, c.token.identity))
	}
	c.p.SetGrants(spec.Publish, spec.Subscribe)
	c.token.arm(c, claims.ExpiresAt)
	publish := spec.Publish && !c.p.Hidden()
	c.reply(env.ID, "refreshed", refreshedData{
		Exp: claims.ExpiresAt.Unix(), Grants: grantsJSON{Publish: publish, Subscribe: spec.Subscribe},
	})
	c.log.Info("token refreshed", "exp", claims.ExpiresAt, "publish", publish, "subscribe", spec.Subscribe)
	return nil
}
