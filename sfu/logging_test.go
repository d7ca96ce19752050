package sfu

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

// pionRecords returns a factory writing JSON at level into a buffer, and a
// function that reads the records written so far.
func pionRecords(t *testing.T, level slog.Level) (*pionLoggerFactory, func() []map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	f := newPionLoggerFactory(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})))
	return f, func() []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line == "" {
				continue
			}
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("not JSON: %q", line)
			}
			out = append(out, r)
		}
		return out
	}
}

func TestPionLogger_MapsLevelsAndNamesTheScope(t *testing.T) {
	f, records := pionRecords(t, levelTrace)
	l := f.NewLogger("ice")
	l.Trace("t")
	l.Tracef("t%d", 1)
	l.Debug("d")
	l.Debugf("d%d", 1)
	l.Info("i")
	l.Infof("i%d", 1)
	l.Warn("w")
	l.Warnf("w%d", 1)
	l.Error("e")
	l.Errorf("e%d", 1)
	want := []struct{ level, msg string }{
		{"DEBUG-4", "t"}, {"DEBUG-4", "t1"}, {"DEBUG", "d"}, {"DEBUG", "d1"}, {"INFO", "i"}, {"INFO", "i1"},
		{"WARN", "w"}, {"WARN", "w1"}, {"ERROR", "e"}, {"ERROR", "e1"},
	}
	got := records()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i]["level"] != w.level || got[i]["msg"] != w.msg || got[i]["pion"] != "ice" {
			t.Errorf("record %d = %v, want level %s msg %q pion ice", i, got[i], w.level, w.msg)
		}
	}
}

func TestPionLogger_HonoursTheLevel(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  string // levels that get through
	}{
		{slog.LevelDebug, "DEBUG,INFO,WARN,ERROR"},
		{slog.LevelInfo, "INFO,WARN,ERROR"},
		{slog.LevelWarn, "WARN,ERROR"},
		{slog.LevelError, "ERROR"},
	} {
		f, records := pionRecords(t, tc.level)
		l := f.NewLogger("dtls")
		l.Tracef("x")
		l.Debugf("x")
		l.Infof("x")
		l.Warnf("x")
		l.Errorf("x")
		var got []string
		for _, r := range records() {
			got = append(got, r["level"].(string))
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("at %s: %v get through, want %s", tc.level, got, tc.want)
		}
	}
}

// counted counts how often it is formatted.
type counted struct{ n *atomic.Int32 }

func (c counted) String() string { c.n.Add(1); return "x" }

// Pion traces on its packet paths: a disabled level costs no formatting.
func TestPionLogger_DoesNotFormatWhatIsNotLogged(t *testing.T) {
	f, records := pionRecords(t, slog.LevelInfo)
	l := f.NewLogger("srtp")
	arg := counted{n: new(atomic.Int32)}
	l.Tracef("%v", arg)
	l.Debugf("%v", arg)
	f2, records2 := pionRecords(t, slog.LevelError)
	l2 := f2.NewLogger("srtp")
	l2.Infof("%v", arg)
	l2.Warnf("%v", arg)
	if n := arg.n.Load(); n != 0 || len(records()) != 0 || len(records2()) != 0 {
		t.Fatalf("formatted %d times, %d records", n, len(records()))
	}
}

// srtp's info records are each about one dropped packet (a duplicate, a
// forgery): never a line per packet at info. Its warnings stay warnings.
func TestPionLogger_SRTPPerPacketInfoGoesToDebug(t *testing.T) {
	f, records := pionRecords(t, slog.LevelDebug)
	srtp := f.NewLogger("srtp")
	srtp.Info("srtp ssrc=1234 index=99: duplicated packet")
	srtp.Info("srtp ssrc=1234: failed to verify auth tag")
	srtp.Warn("srtp: something else")
	f.NewLogger("ice").Info("New IP address detected: 10.0.0.2")
	var got []string
	for _, r := range records() {
		got = append(got, r["pion"].(string)+":"+r["level"].(string))
	}
	if want := "srtp:DEBUG,srtp:DEBUG,srtp:WARN,ice:INFO"; strings.Join(got, ",") != want {
		t.Fatalf("records %v, want %s", got, want)
	}
}

func TestPionLogger_RoutineAndTeardownGoToDebug(t *testing.T) {
	closed := errors.New("read udp 127.0.0.1:1->127.0.0.1:2: use of closed network connection")
	for _, tc := range []struct {
		name string
		log  func(l *pionLogger)
		want string
	}{
		{"state change", func(l *pionLogger) { l.Infof("ICE connection state changed: %s", "connected") }, "DEBUG"},
		{"peer state change", func(l *pionLogger) { l.Infof("peer connection state changed: %s", "closed") }, "DEBUG"},
		{"close_notify", func(l *pionLogger) { l.Info("Closing PeerConnection from DTLS CloseNotify") }, "DEBUG"},
		{"ping before candidates", func(l *pionLogger) {
			l.Warn("Failed to ping without candidate pairs. Connection is not possible yet.")
		}, "DEBUG"},
		{"closed socket", func(l *pionLogger) { l.Warnf("Failed to read from candidate %s: %v", "udp4 host", closed) }, "DEBUG"},
		{"closed SRTP session", func(l *pionLogger) { l.Warnf("Failed to accept RTP %v", errors.New("stream is already closed")) }, "DEBUG"},
		{"closed pipe", func(l *pionLogger) { l.Errorf("Failed to write: %v", errors.New("io: read/write on closed pipe")) }, "DEBUG"},
		{"mux queues an early packet", func(l *pionLogger) {
			l.Warnf("Warning: mux: no endpoint for packet starting with %d, adding to queue size(%d)", 21, 0)
		}, "DEBUG"},
		{"browser's active TCP candidate", func(l *pionLogger) {
			l.Infof("Ignoring remote candidate with tcpType active: %s", "tcp4 host 192.0.2.2:9")
		}, "DEBUG"},
		{"late STUN answer after a close", func(l *pionLogger) {
			l.Warnf("No Username attribute in STUN message from %s", "192.0.2.2:53865")
		}, "DEBUG"},
		{"stray STUN that does not decode", func(l *pionLogger) {
			l.Warnf("Failed to handle decode ICE from %s: %v", "192.0.2.2:53865", errors.New("unexpected EOF"))
		}, "DEBUG"},
		// What is not routine stays where Pion put it.
		{"mux queue full", func(l *pionLogger) {
			l.Warnf("Warning: mux: no endpoint for packet starting with %d, not adding to queue size(%d)", 21, 64)
		}, "WARN"},
		{"a real read error", func(l *pionLogger) {
			l.Warnf("Failed to read from candidate %s: %v", "udp4 host", errors.New("connection refused"))
		}, "WARN"},
		{"handshake failure", func(l *pionLogger) { l.Errorf("Failed to start manager: %v", errors.New("handshake error")) }, "ERROR"},
		{"new address", func(l *pionLogger) { l.Infof("New IP address detected: %s", "10.0.0.2") }, "INFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, records := pionRecords(t, slog.LevelDebug)
			tc.log(f.NewLogger("ice").(*pionLogger))
			got := records()
			if len(got) != 1 || got[0]["level"] != tc.want {
				t.Fatalf("records %v, want one at %s", got, tc.want)
			}
		})
	}
}
