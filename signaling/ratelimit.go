package signaling

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The limits below are token buckets from golang.org/x/time/rate rather
// than our own arithmetic: it is the maintained, race-tested implementation
// the Go project uses, it handles bursts and refill exactly, and it takes the
// current time as an argument, so tests stay deterministic.

// keyedLimiter allows each key (a client address) burst events at once and
// then perMinute per minute: limits.joins_per_ip_per_minute. Idle keys are
// forgotten, so hostile addresses cannot grow it without bound.
type keyedLimiter struct {
	limit     rate.Limit
	burst     int
	mu        sync.Mutex
	m         map[string]*rate.Limiter
	lastSweep time.Time
}

func newJoinLimiter(perMinute int) *keyedLimiter {
	return &keyedLimiter{
		limit: rate.Limit(float64(perMinute) / 60), burst: perMinute,
		m: map[string]*rate.Limiter{},
	}
}

// allow records an event of key at now and reports whether it is within the
// limit.
func (l *keyedLimiter) allow(key string, now time.Time) bool {
	if l.burst <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		// A full bucket is a key with nothing to remember.
		for k, lim := range l.m {
			if lim.TokensAt(now) >= float64(l.burst) {
				delete(l.m, k)
			}
		}
		l.lastSweep = now
	}
	lim := l.m[key]
	if lim == nil {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[key] = lim
	}
	return lim.AllowN(now, 1)
}

// newMessageLimiter is limits.messages_per_second for one connection, with
// a burst of two seconds' worth.
func newMessageLimiter(perSecond int) *rate.Limiter {
	if perSecond <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(perSecond), 2*perSecond)
}

// devLoopback reports whether ip is a loopback client in dev mode: exempt
// from per-IP limits, so a local load test of hundreds of viewers is not
// mistaken for abuse.
func (s *Server) devLoopback(ip string) bool {
	if !s.cfg.Dev {
		return false
	}
	a, err := netip.ParseAddr(ip)
	return err == nil && a.IsLoopback()
}

// joinAllowed applies limits.joins_per_ip_per_minute to ip, by its limit
// key (an IPv6 address counts as its /64).
func (s *Server) joinAllowed(ip string, now time.Time) bool {
	if s.devLoopback(ip) {
		return true
	}
	a, _ := netip.ParseAddr(ip)
	return s.joins.allow(limitKey(a, ip), now)
}

// counter counts open things per key (connections, sockets not yet joined)
// against a cap.
type counter struct {
	max int
	mu  sync.Mutex
	m   map[string]int
}

func newCounter(max int) *counter { return &counter{max: max, m: map[string]int{}} }

// acquire counts one more for key and returns its release (safe to call more
// than once), or false when key is at the cap. A cap of 0 is no cap.
func (c *counter) acquire(key string) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.m[key] >= c.max {
		return nil, false
	}
	c.m[key]++
	return sync.OnceFunc(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.m[key]--; c.m[key] <= 0 {
			delete(c.m, key)
		}
	}), true
}

// open reports the count of key.
func (c *counter) open(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}
