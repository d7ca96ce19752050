package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pion/logging"
)

// levelTrace is the slog level of Pion's trace messages: below Debug, so
// log.level debug does not drown in per-packet STUN and DTLS records. A
// handler at levelTrace (slog "DEBUG-4") or lower shows them; log.level
// does not offer it.
const levelTrace = slog.LevelDebug - 4

// pionLoggerFactory is a pion/logging.LoggerFactory that writes Pion's
// records to a slog.Logger, so they honour log.level and log.format like
// ours and carry a "pion" attribute naming the Pion scope (ice, dtls,
// pc, sctp, ...).
//
// Levels: trace to levelTrace, debug to Debug, info to Info, warn and error
// to Warn and Error, with two exceptions that keep a normal session free
// of warnings and readable at info:
//   - routine: the state changes every connection goes through (signaling,
//     ICE and peer connection state, a DTLS close_notify closing it, an
//     ICE check before the first candidate, a stray STUN message for no
//     connection) go to Debug, and so does
//     srtp's info, which is a line per dropped packet; the participant's
//     join and leave are logged at info with the room and participant,
//     which Pion's records lack.
//   - teardown: warnings and errors that only say a connection closed under
//     a reader or writer (see isTeardown) go to Debug.
//
// Records that stay at Info or above are rate-limited per scope and
// message (loglimit.go): anyone who can send packets can make Pion warn
// about each one. Values that Pion's messages label as secrets (an ICE
// password) are redacted at every level (redact.go).
type pionLoggerFactory struct {
	log *slog.Logger
	lim *logLimiter
}

// newPionLoggerFactory returns a factory writing to log.
func newPionLoggerFactory(log *slog.Logger) *pionLoggerFactory {
	return &pionLoggerFactory{log: log, lim: newLogLimiter(logInterval)}
}

// NewLogger implements logging.LoggerFactory.
func (f *pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{log: f.log.With("pion", scope), scope: scope, lim: f.lim, perPacketInfo: perPacketInfo[scope]}
}

// pionLogger is one Pion scope's logger.
type pionLogger struct {
	log           *slog.Logger
	scope         string
	lim           *logLimiter
	perPacketInfo bool // info records of this scope go to Debug
}

var _ logging.LeveledLogger = (*pionLogger)(nil)

// The methods of logging.LeveledLogger, each at its slog level.
func (l *pionLogger) Trace(msg string)                  { l.emit(levelTrace, msg, nil) }
func (l *pionLogger) Tracef(format string, args ...any) { l.emit(levelTrace, format, args) }
func (l *pionLogger) Debug(msg string)                  { l.emit(slog.LevelDebug, msg, nil) }
func (l *pionLogger) Debugf(format string, args ...any) { l.emit(slog.LevelDebug, format, args) }
func (l *pionLogger) Info(msg string)                   { l.emit(slog.LevelInfo, msg, nil) }
func (l *pionLogger) Infof(format string, args ...any)  { l.emit(slog.LevelInfo, format, args) }
func (l *pionLogger) Warn(msg string)                   { l.emit(slog.LevelWarn, msg, nil) }
func (l *pionLogger) Warnf(format string, args ...any)  { l.emit(slog.LevelWarn, format, args) }
func (l *pionLogger) Error(msg string)                  { l.emit(slog.LevelError, msg, nil) }
func (l *pionLogger) Errorf(format string, args ...any) { l.emit(slog.LevelError, format, args) }

// emit formats and logs one record. Nothing is formatted unless the
// handler wants the level Pion gave (reclassifying only ever lowers it):
// Pion traces on its packet paths.
func (l *pionLogger) emit(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	msg := format
	if args != nil {
		msg = fmt.Sprintf(format, redactArgs(format, args)...)
	}
	switch {
	case level == slog.LevelInfo && l.perPacketInfo:
		level = slog.LevelDebug
	case level >= slog.LevelInfo && isRoutine(format):
		level = slog.LevelDebug
	case level >= slog.LevelWarn && isTeardown(msg):
		level = slog.LevelDebug
	}
	if level < slog.LevelInfo {
		l.log.Log(ctx, level, msg)
		return
	}
	suppressed, ok := l.lim.allow(l.scope, level, format, monoNow())
	switch {
	case !ok:
	case suppressed > 0:
		l.log.Log(ctx, level, msg, "suppressed", suppressed)
	default:
		l.log.Log(ctx, level, msg)
	}
}

// routine lists the starts of Pion's messages that every connection logs
// on its way up and down.
var routine = []string{
	// info: state changes
	"signaling state changed",
	"ICE connection state changed",
	"peer connection state changed",
	"Setting new connection state",
	"Closing PeerConnection from DTLS CloseNotify",
	// warn: ICE's first connectivity check runs before the client's
	// trickled candidates have arrived; a connection that never gets any
	// fails, and that is logged by its state.
	"Failed to ping without candidate pairs",
	// info: browsers offer tcptype active candidates (port 9), which a
	// server that does not dial out ignores.
	"Ignoring remote candidate with tcpType active",
	// warn: a packet that matches no endpoint of the connection yet (DTLS
	// before its endpoint is set up) or any more (the client's DTLS
	// close_notify after ours) is queued; a full queue still warns.
	"Warning: mux: no endpoint for packet starting with %d, adding to queue",
	// warn: the UDP mux met a STUN message from an address no connection
	// has (any more) that names none by its username. A client's answer
	// to a check that was in flight when its connection closed is one
	// (seen at a browser's teardown, from its second interface); anyone
	// who can reach the port can send them, so at warn they would be a
	// line per packet for a flood. Packets for no connection are dropped.
	"No Username attribute in STUN message from",
	"Failed to handle decode ICE from",
	// warn: a WHEP connection brought back from parking (park.go) sends
	// under the SSRCs its first answer gave, not those its new senders
	// drew: the viewer's feedback about them reaches the connection's RTCP
	// buffers all the same (viewerrtcp.go), through Pion's stream for
	// SSRCs it did not expect.
	"Incoming unhandled RTCP ssrc(%d), OnTrack will not be fired",
}

func isRoutine(format string) bool {
	for _, p := range routine {
		if strings.HasPrefix(format, p) {
			return true
		}
	}
	return false
}

// perPacketInfo names the Pion scopes whose info records are each about
// one packet: srtp notes every packet it drops on decryption (a duplicate,
// which replay protection drops, is common when a retransmission crosses
// the original; a forged one comes from a hostile client). At info they
// would be a line per packet, which anyone could flood; they go to Debug.
var perPacketInfo = map[string]bool{"srtp": true}

// teardown lists what Pion's warnings and errors say when a reader or
// writer meets a connection that was closed on purpose (a viewer leaving, a
// session ending, the node stopping). Each is the error text of a close,
// never of a failure: a connection that fails is reported by its state
// (failed), which the room handles and logs at info.
var teardown = []string{
	"use of closed network connection", // net: a socket closed under its reader
	"io: read/write on closed pipe",    // Pion's packet buffers and pipes
	"stream is already closed",         // srtp: the session closed while accepting streams
	// A connection closed before it connected: a WHEP session parked after
	// its answer (park.go), a player that went away. Pion's DTLS start and
	// its processors of undeclared streams give up on the close.
	"connecting canceled by caller",
	"the DTLS transport has not started yet",
	"the agent is closed", // ice: closed while Pion started its transports ("Failed to start manager")
}

func isTeardown(msg string) bool {
	for _, s := range teardown {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
