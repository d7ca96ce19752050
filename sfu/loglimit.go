package sfu

import (
	"log/slog"
	"sync"
	"time"
)

// Rate-limited logging. Pion logs some warnings once per packet (a STUN
// request with a broken integrity, from anyone who read a session's ufrag
// in its SDP): 20,000 such packets a second were 200,000 lines, 32 MB, in
// 10 s. So a record at Info or above is written at most once per
// logInterval for each cause (the Pion scope, the level and the message's
// format, which carries no per-packet values); the ones held back are counted,
// the next line written for that cause says how many
// ("suppressed"), and halo_log_suppressed_total counts them all.

// logInterval is how often one cause may be logged.
const logInterval = 10 * time.Second

// maxLogCauses bounds the causes tracked one by one (and so the series of
// halo_log_suppressed_total): Pion's formats are a finite set, but a
// message logged without a format may carry anything. Causes past the
// bound share one, "other".
const maxLogCauses = 128

// logCauseOther is the cause every cause past maxLogCauses shares.
const logCauseOther = "other"

// logCause is what records are limited by.
type logCause struct {
	scope  string
	level  slog.Level
	format string
}

type logCauseState struct {
	last       int64  // monoNow of the last record written
	held       uint64 // records held back since
	suppressed uint64 // records held back, ever
}

// logLimiter decides which records of a cause are written.
type logLimiter struct {
	interval int64
	mu       sync.Mutex
	causes   map[logCause]*logCauseState
}

func newLogLimiter(interval time.Duration) *logLimiter {
	return &logLimiter{interval: int64(interval), causes: map[logCause]*logCauseState{}}
}

// allow reports whether a record of the cause may be written at now
// (monoNow), and how many were held back since the last one written.
func (l *logLimiter) allow(scope string, level slog.Level, format string, now int64) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := logCause{scope, level, format}
	st := l.causes[k]
	if st == nil {
		if len(l.causes) >= maxLogCauses {
			k = logCause{scope: logCauseOther, format: logCauseOther}
			st = l.causes[k]
		}
		if st == nil {
			st = &logCauseState{last: now - l.interval}
			l.causes[k] = st
		}
	}
	if now-st.last < l.interval {
		st.held++
		st.suppressed++
		return 0, false
	}
	held := st.held
	st.last, st.held = now, 0
	return held, true
}

// suppressedByCause returns how many log records were held back by the rate
// limit, by cause: "scope: message format" (at most maxLogCauses of
// them, and "other").
func (l *logLimiter) suppressedByCause() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.causes))
	for k, st := range l.causes {
		if st.suppressed == 0 {
			continue
		}
		out[causeLabel(k)] += st.suppressed
	}
	return out
}

// causeLabel is the label value of a cause: the scope and the start of
// the level and the start of the format (its verbs, not its values).
func causeLabel(k logCause) string {
	if k.scope == logCauseOther {
		return logCauseOther
	}
	f := k.format
	if len(f) > 64 {
		f = f[:64]
	}
	return k.scope + " " + k.level.String() + ": " + f
}
