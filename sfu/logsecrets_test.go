package sfu

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// newLoggingEngine is a loopback engine whose logs, at level, go to the
// returned buffer as JSON.
func newLoggingEngine(t *testing.T, level slog.Level, pionViewers bool) (*Engine, *testutil.SyncBuffer) {
	t.Helper()
	cfg := config.Default().SFU
	cfg.UDPPort = 0
	cfg.UDPAddress = "127.0.0.1"
	cfg.IncludeLoopback = true
	cfg.PionViewers = pionViewers
	buf := &testutil.SyncBuffer{}
	e, err := NewEngine(cfg, slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, buf
}

func TestPionLogger_RateLimitsEachCauseAndCountsWhatItHeldBack(t *testing.T) {
	var buf bytes.Buffer
	f := newPionLoggerFactory(slog.New(slog.NewJSONHandler(&buf, nil)))
	f.lim = newLogLimiter(300 * time.Millisecond)
	ice, dtls := f.NewLogger("ice"), f.NewLogger("dtls")
	for i := range 1000 {
		ice.Warnf("Discard request with broken integrity from (%s), %v", "127.0.0.1:9", i)
		dtls.Warnf("Discard request with broken integrity from (%s), %v", "127.0.0.1:9", i)
	}
	ice.Errorf("something else %d", 1)
	if n := strings.Count(buf.String(), "\n"); n != 3 {
		t.Fatalf("%d lines for 2,001 records of three causes, want 3:\n%s", n, buf.String())
	}
	time.Sleep(350 * time.Millisecond)
	ice.Warnf("Discard request with broken integrity from (%s), %v", "127.0.0.1:9", 1000)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, `"suppressed":999`) {
		t.Fatalf("the next line of the cause does not say 999 were held back: %s", last)
	}
	got := f.lim.suppressedByCause()
	if len(got) != 2 || got["ice WARN: Discard request with broken integrity from (%s), %v"] != 999 {
		t.Fatalf("held back by cause: %v", got)
	}
}

func TestLogLimiter_BoundsTheCauses(t *testing.T) {
	l := newLogLimiter(time.Hour)
	for i := range 3 * maxLogCauses {
		for range 2 {
			l.allow("ice", slog.LevelWarn, strings.Repeat("x", i), 0)
		}
	}
	got := l.suppressedByCause()
	if len(got) > maxLogCauses+1 || got[logCauseOther] == 0 {
		t.Fatalf("%d causes reported (other: %d), want at most %d", len(got), got[logCauseOther], maxLogCauses+1)
	}
}

func TestRedactArgs_HidesWhatTheFormatLabelsAsASecret(t *testing.T) {
	for _, tc := range []struct {
		format string
		args   []any
		want   string
	}{
		{"Started agent: isControlling? %t, remoteUfrag: %q, remotePwd: %q", []any{false, "uf", "s3cr3tpassword"}, `Started agent: isControlling? false, remoteUfrag: "uf", remotePwd: "[redacted]"`},
		{"password=%s user=%s", []any{"hunter2", "bob"}, "password=[redacted] user=bob"},
		{"100%% done, %d left, token %v", []any{3, "abc"}, "100% done, 3 left, token [redacted]"},
		{"Registered %s for %s", []any{"127.0.0.1", "ufrag"}, "Registered 127.0.0.1 for ufrag"},
	} {
		args := append([]any(nil), tc.args...)
		if got := fmtRedacted(tc.format, tc.args); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.format, got, tc.want)
		}
		for i := range args {
			if args[i] != tc.args[i] {
				t.Errorf("%q: the caller's arguments were changed", tc.format)
			}
		}
	}
}

func fmtRedacted(format string, args []any) string {
	var buf bytes.Buffer
	f := newPionLoggerFactory(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: levelTrace})))
	f.NewLogger("ice").Debugf(format, args...)
	var r struct{ Msg string }
	_ = json.Unmarshal(buf.Bytes(), &r)
	return r.Msg
}

// Issue 23 item 5: no ICE password and no SRTP key in the logs, at any
// level. Real Pion peers publish and watch through an engine logging at
// Pion's trace level (below debug): a publisher that restarts ICE, a
// WHEP viewer handed over from Pion that restarts ICE too; then both
// leave. Neither side's ICE passwords (first and after the restart) nor
// the viewer's SRTP keys (hex or base64) appear in what was logged.
func TestEngine_LogsNoICEPasswordOrSRTPKeyAtAnyLevel(t *testing.T) {
	e, logs := newLoggingEngine(t, levelTrace, false)
	var secrets []string
	pwdOf := func(sdp string) string {
		f, err := iceFragmentOf(sdp)
		if err != nil || f.Pwd == "" {
			t.Fatalf("no ICE password in %q: %v", sdp, err)
		}
		return f.Pwd
	}

	// The publisher.
	pub, err := e.NewPublisher("alice", PublisherEvents{})
	if err != nil {
		t.Fatal(err)
	}
	client := testutil.LoopbackPeer(t, testutil.PeerOptions{})
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	pubStates := iceStates(client)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offer := gatheredOffer(t, client, nil)
	answer, err := pub.HandleOffer(ctx, offer, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	waitICE(t, pubStates, webrtc.ICEConnectionStateConnected)
	restart := gatheredOffer(t, client, &webrtc.OfferOptions{ICERestart: true})
	creds, err := iceFragmentOf(restart)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pub.RestartICE(ctx, creds.Ufrag, creds.Pwd)
	if err != nil {
		t.Fatal(err)
	}
	newAnswer, err := withICECredentials(answer, got.Ufrag, got.Pwd)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: newAnswer}); err != nil {
		t.Fatal(err)
	}
	waitICE(t, pubStates, webrtc.ICEConnectionStateChecking)
	waitICE(t, pubStates, webrtc.ICEConnectionStateConnected)
	secrets = append(secrets, pwdOf(offer), pwdOf(answer), creds.Pwd, got.Pwd)

	// The viewer, handed over, restarting ICE.
	tr, _ := feedTrack(t, e, 100, 50)
	v := newPionViewer(t, e, tr)
	<-v.started
	waitHandedOver(t, e, 1)
	secrets = append(secrets, pwdOf(v.pc.LocalDescription().SDP), pwdOf(v.pc.RemoteDescription().SDP))
	k := v.sub.link.keys.Load()
	for _, b := range [][]byte{k.key, k.salt, k.remoteKey, k.remoteSalt} {
		secrets = append(secrets, hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
			base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b))
	}
	vStates := iceStates(v.pc)
	vCreds, vGot, vAnswer := restartViewer(t, v)
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: vAnswer}); err != nil {
		t.Fatal(err)
	}
	waitICE(t, vStates, webrtc.ICEConnectionStateChecking)
	waitICE(t, vStates, webrtc.ICEConnectionStateConnected)
	secrets = append(secrets, vCreds.Pwd, vGot.Pwd)
	at := len(v.received())
	testutil.Eventually(t, "no media after the viewer's restart", func() bool { return len(v.received()) > at+50 })

	// Both leave.
	_ = client.Close()
	_ = v.pc.Close()
	_ = pub.Close()
	_ = v.sub.Close()

	out := logs.String()
	if !strings.Contains(out, `"level":"DEBUG-4"`) || !strings.Contains(out, "Started agent") {
		t.Fatalf("the engine did not log at Pion's trace level (%d bytes): the test sees nothing", len(out))
	}
	for _, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("secret %q too short to search for", s)
		}
		if i := strings.Index(out, s); i >= 0 {
			line := out[strings.LastIndexByte(out[:i], '\n')+1:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			t.Errorf("a secret is in the logs: %s", line)
		}
	}
}

// Issue 23 item 5: thousands of STUN requests naming a real session (its
// ufrag, as the SDP shows it) with a wrong integrity make Pion's ICE agent
// warn once each. At the default level the engine writes a few lines,
// and halo_log_suppressed_total counts the rest.
func TestEngine_BrokenIntegrityFloodLogsAFewLines(t *testing.T) {
	e, logs := newLoggingEngine(t, slog.LevelInfo, true)
	reg := prometheus.NewRegistry()
	e.RegisterMetrics(reg)
	tr, _ := feedTrack(t, e, 100, 50)
	v := newPionViewer(t, e, tr)
	<-v.started
	server, err := iceFragmentOf(v.pc.RemoteDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := iceFragmentOf(v.pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := net.UDPAddrFromAddrPort(e.socks[0].local)
	const flood = 5000
	for i := range flood {
		m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(server.Ufrag+":"+viewer.Ufrag),
			stun.NewShortTermIntegrity("not-the-password"), stun.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteToUDP(m.Raw, to); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 {
			time.Sleep(10 * time.Millisecond) // loopback's socket buffers, not a rate limit of ours
		}
	}
	held := func() float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "halo_log_suppressed_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				if strings.Contains(m.GetLabel()[0].GetValue(), "broken integrity") {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	testutil.Eventually(t, "the broken-integrity warnings were not counted", func() bool { return held() >= flood/2 })
	time.Sleep(200 * time.Millisecond)
	out := logs.String()
	if n := strings.Count(out, "broken integrity"); n < 1 || n > 2 {
		t.Fatalf("%d lines about broken integrity for %d requests (%.0f held back), want 1 or 2", n, flood, held())
	}
	if n := strings.Count(out, "\n"); n > 20 {
		t.Fatalf("%d lines logged in all for a flood of %d requests:\n%s", n, flood, out)
	}
	if v.pc.ICEConnectionState() != webrtc.ICEConnectionStateConnected {
		t.Fatalf("the viewer's connection is %s after the flood", v.pc.ICEConnectionState())
	}
}
