package loadtest

import "time"

// linkBucket is a narrow link in front of a lean viewer: a token bucket of
// bytes that admits packets up to its rate, with a burst of 50 ms (at least
// one full packet), and drops the rest as a congested link drops them.
// Reader goroutine only.
type linkBucket struct {
	bytesPerSecond float64
	burst, tokens  float64
	last           time.Time
}

func newLinkBucket(kbps int) *linkBucket {
	rate := float64(kbps) * 1000 / 8
	burst := max(rate/20, 1500)
	return &linkBucket{bytesPerSecond: rate, burst: burst, tokens: burst}
}

// admit reports whether a packet of n bytes arriving at now fits the link.
func (l *linkBucket) admit(n int, now time.Time) bool {
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.bytesPerSecond)
	}
	l.last = now
	if l.tokens < float64(n) {
		return false
	}
	l.tokens -= float64(n)
	return true
}
