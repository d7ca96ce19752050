package sfu

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// sessionLevelOffer carries its ICE credentials at session level, as RFC
// 8839 allows and some WHIP clients do.
const sessionLevelOffer = `v=0
o=- 1 2 IN IP4 127.0.0.1
s=-
t=0 0
a=ice-ufrag:sess
a=ice-pwd:sessionpasswordsession
a=group:BUNDLE 0
m=video 9 UDP/TLS/RTP/SAVPF 96
c=IN IP4 0.0.0.0
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF
a=setup:actpass
a=mid:0
a=sendonly
a=rtcp-mux
a=rtpmap:96 VP8/90000
a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host
a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host
`

func TestWithICECredentials_ChangesOnlyTheCredentials(t *testing.T) {
	const ufrag, pwd = "newfrag1", "newpasswordnewpassword12"
	for _, tc := range []struct{ name, offer string }{
		{"browser offer, CRLF", crlf(browserOffer)},
		{"browser offer, LF only", browserOffer},
		{"session-level credentials", crlf(sessionLevelOffer)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := withICECredentials(tc.offer, ufrag, pwd)
			if err != nil {
				t.Fatal(err)
			}
			before, after := parseSDP(t, tc.offer), parseSDP(t, got)
			if n := countCredentials(after, ufrag, pwd); n == 0 || n != countCredentials(before, "", "") {
				t.Fatalf("%d credential attributes carry the new values, want all %d:\n%s", n, countCredentials(before, "", ""), got)
			}
			// Apart from the credentials, the description is what it was.
			orig, err := before.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			want := replaceLines(string(orig), "a=ice-ufrag:", "a=ice-ufrag:"+ufrag)
			want = replaceLines(want, "a=ice-pwd:", "a=ice-pwd:"+pwd)
			if got != want {
				t.Fatalf("edited SDP differs beyond the credentials:\n got %q\nwant %q", got, want)
			}
			f, err := iceFragmentOf(got)
			if err != nil || f.Ufrag != ufrag || f.Pwd != pwd {
				t.Fatalf("iceFragmentOf(edited) = %+v, %v", f, err)
			}
		})
	}
}

func TestWithICECredentials_RejectsWhatCannotBeRestarted(t *testing.T) {
	noCreds := strings.NewReplacer("a=ice-ufrag:abcd\n", "", "a=ice-pwd:abcdefghijklmnopqrstuvwx\n", "").Replace(browserOffer)
	for _, tc := range []struct{ name, offer, ufrag, pwd string }{
		{"no credentials in the offer", crlf(noCreds), "newfrag1", "newpasswordnewpassword12"},
		{"not SDP", "hello", "newfrag1", "newpasswordnewpassword12"},
		{"empty ufrag", crlf(browserOffer), "", "newpasswordnewpassword12"},
		{"empty pwd", crlf(browserOffer), "newfrag1", ""},
		{"ufrag smuggling a line", crlf(browserOffer), "abcd\r\na=setup:passive", "newpasswordnewpassword12"},
		{"pwd smuggling a line", crlf(browserOffer), "newfrag1", "newpasswordnewpassword12\nm=audio 9 RTP/AVP 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := withICECredentials(tc.offer, tc.ufrag, tc.pwd)
			if !errors.Is(err, ErrInvalidSDP) {
				t.Fatalf("withICECredentials = %q, %v; want ErrInvalidSDP", got, err)
			}
		})
	}
}

func TestICEFragmentOf_FirstCredentialsAndDistinctCandidates(t *testing.T) {
	f, err := iceFragmentOf(crlf(sessionLevelOffer))
	if err != nil {
		t.Fatal(err)
	}
	want := ICEFragment{Ufrag: "sess", Pwd: "sessionpasswordsession",
		Candidates: []string{"candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"}}
	if f.Ufrag != want.Ufrag || f.Pwd != want.Pwd || strings.Join(f.Candidates, "|") != strings.Join(want.Candidates, "|") {
		t.Fatalf("iceFragmentOf = %+v, want %+v", f, want)
	}
	if _, err := iceFragmentOf("garbage"); !errors.Is(err, ErrInvalidSDP) {
		t.Fatalf("iceFragmentOf(garbage): %v, want ErrInvalidSDP", err)
	}
}

// A real Pion client publishing to the SFU restarts ICE with new
// credentials (as a WHIP client does with PATCH): the SFU answers with new
// credentials of its own and the connection checks and connects again over
// them.
func TestPublisher_ICERestartConnectsWithTheNewCredentials(t *testing.T) {
	e, err := NewEngine(testutil.SFUConfig(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	pub, err := e.NewPublisher("alice", PublisherEvents{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })

	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	client, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	states := make(chan webrtc.ICEConnectionState, 32)
	client.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		select {
		case states <- s:
		default:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	offer := gatheredOffer(t, client, nil)
	answer, err := pub.HandleOffer(ctx, offer, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	waitICE(t, states, webrtc.ICEConnectionStateConnected)
	first, err := iceFragmentOf(answer)
	if err != nil {
		t.Fatal(err)
	}

	restart := gatheredOffer(t, client, &webrtc.OfferOptions{ICERestart: true})
	creds, err := iceFragmentOf(restart)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pub.RestartICE(ctx, creds.Ufrag, creds.Pwd)
	if err != nil {
		t.Fatalf("RestartICE: %v", err)
	}
	if got.Ufrag == "" || got.Ufrag == first.Ufrag || got.Pwd == first.Pwd || len(got.Candidates) == 0 {
		t.Fatalf("restart answered %+v; want new credentials and candidates (first answer had %q)", got, first.Ufrag)
	}
	if r := pub.RemoteUfrag(); r != creds.Ufrag {
		t.Fatalf("SFU's remote ufrag %q, want the client's new %q", r, creds.Ufrag)
	}
	// The client applies the answer as a WHIP client applies the PATCH
	// response: its previous answer with the new credentials.
	newAnswer, err := withICECredentials(answer, got.Ufrag, got.Pwd)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: newAnswer}); err != nil {
		t.Fatal(err)
	}
	waitICE(t, states, webrtc.ICEConnectionStateChecking)
	waitICE(t, states, webrtc.ICEConnectionStateConnected)
}

// gatheredOffer sets a new local offer on pc and returns it with every
// candidate.
func gatheredOffer(t *testing.T, pc *webrtc.PeerConnection, opts *webrtc.OfferOptions) string {
	t.Helper()
	offer, err := pc.CreateOffer(opts)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		t.Fatal("ICE gathering did not complete")
	}
	return pc.LocalDescription().SDP
}

// waitICE waits until the client reports state, failing on "failed".
func waitICE(t *testing.T, states <-chan webrtc.ICEConnectionState, want webrtc.ICEConnectionState) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case s := <-states:
			if s == want {
				return
			}
			if s == webrtc.ICEConnectionStateFailed {
				t.Fatalf("ICE failed while waiting for %s", want)
			}
		case <-deadline:
			t.Fatalf("ICE never reached %s", want)
		}
	}
}

func FuzzWithICECredentials(f *testing.F) {
	f.Add(crlf(browserOffer), "newfrag1", "newpasswordnewpassword12")
	f.Add(crlf(sessionLevelOffer), "a", "b")
	f.Add("v=0\r\n", "x\r\ny", "z")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, offer, ufrag, pwd string) {
		got, err := withICECredentials(offer, ufrag, pwd)
		if err != nil {
			if !errors.Is(err, ErrInvalidSDP) {
				t.Fatalf("error %v does not wrap ErrInvalidSDP", err)
			}
			return
		}
		frag, err := iceFragmentOf(got)
		if err != nil {
			t.Fatalf("edited SDP does not parse: %v\n%q", err, got)
		}
		if frag.Ufrag != ufrag || frag.Pwd != pwd {
			t.Fatalf("edited SDP carries %q/%q, want %q/%q", frag.Ufrag, frag.Pwd, ufrag, pwd)
		}
	})
}

func parseSDP(t *testing.T, s string) *sdp.SessionDescription {
	t.Helper()
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(s); err != nil {
		t.Fatal(err)
	}
	return &sd
}

// countCredentials counts ice-ufrag/ice-pwd attributes; with non-empty
// values, only those carrying them.
func countCredentials(sd *sdp.SessionDescription, ufrag, pwd string) int {
	n := 0
	count := func(attrs []sdp.Attribute) {
		for _, a := range attrs {
			if (a.Key == attrICEUfrag && (ufrag == "" || a.Value == ufrag)) || (a.Key == attrICEPwd && (pwd == "" || a.Value == pwd)) {
				n++
			}
		}
	}
	count(sd.Attributes)
	for _, m := range sd.MediaDescriptions {
		count(m.Attributes)
	}
	return n
}

// replaceLines replaces every CRLF line of s that starts with prefix.
func replaceLines(s, prefix, with string) string {
	lines := strings.Split(s, "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			lines[i] = with
		}
	}
	return strings.Join(lines, "\r\n")
}
