package signaling

import (
	"net/netip"
	"sync"
	"time"
)

// joinLimiter allows at most limit joins per IP in any sliding minute
// (approximated by two fixed one-minute windows).
type joinLimiter struct {
	limit int
	mu    sync.Mutex
	win   time.Time
	cur   map[string]int
	prev  map[string]int
}

func newJoinLimiter(perMinute int) *joinLimiter {
	return &joinLimiter{limit: perMinute, cur: map[string]int{}, prev: map[string]int{}}
}

// allow records a join from ip and reports whether it is within the limit.
func (l *joinLimiter) allow(ip string, now time.Time) bool {
	if l.limit <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := now.Truncate(time.Minute)
	if !w.Equal(l.win) {
		if w.Sub(l.win) == time.Minute {
			l.prev = l.cur
		} else {
			l.prev = map[string]int{}
		}
		l.cur = map[string]int{}
		l.win = w
	}
	// Weight the previous window by how much of it still overlaps the last minute.
	frac := 1 - float64(now.Sub(w))/float64(time.Minute)
	est := float64(l.prev[ip])*frac + float64(l.cur[ip])
	if est >= float64(l.limit) {
		return false
	}
	l.cur[ip]++
	return true
}

// tokenBucket limits the messages of one connection. Not safe for
// concurrent use: one reader goroutine owns it.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(perSecond int) *tokenBucket {
	r := float64(perSecond)
	return &tokenBucket{rate: r, burst: 2 * r, tokens: 2 * r}
}

func (b *tokenBucket) allow(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// joinAllowed applies limits.joins_per_ip_per_minute. In dev mode, clients on
// this machine (loopback) are exempt, so a local load test of hundreds of
// viewers is not mistaken for abuse.
func (s *Server) joinAllowed(ip string, now time.Time) bool {
	if s.cfg.Dev {
		if a, err := netip.ParseAddr(ip); err == nil && a.IsLoopback() {
			return true
		}
	}
	return s.joins.allow(ip, now)
}
