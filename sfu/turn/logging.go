package turn

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs gives pion/turn's loggers to slog at debug level: what pion
// reports there is about one client's bad request or a closed socket, and a
// hostile client must not be able to fill the node's log.
type pionLogs struct{ log *slog.Logger }

// NewLogger returns the logger of one pion scope.
func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{p.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(string)              {}
func (l pionLogger) Debugf(string, ...any)     {}
func (l pionLogger) Info(string)               {}
func (l pionLogger) Infof(string, ...any)      {}
func (l pionLogger) Warn(msg string)           { l.log.Debug(msg) }
func (l pionLogger) Warnf(f string, a ...any)  { l.debugf(f, a...) }
func (l pionLogger) Error(msg string)          { l.log.Debug(msg) }
func (l pionLogger) Errorf(f string, a ...any) { l.debugf(f, a...) }

// debugf formats only when debug logs are on.
func (l pionLogger) debugf(f string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(f, a...))
	}
}
