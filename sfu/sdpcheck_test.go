package sfu

import (
	"errors"
	"strings"
	"testing"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

const browserOffer = `v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=msid-semantic: WMS stream
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF
a=setup:actpass
a=mid:0
a=sendonly
a=msid:stream mic-1
a=rtcp-mux
a=rtpmap:111 opus/48000/2
m=video 9 UDP/TLS/RTP/SAVPF 96
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF
a=setup:actpass
a=mid:1
a=sendonly
a=msid:stream cam-1
a=rtcp-mux
a=rtpmap:96 VP8/90000
`

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func TestCheckOffer_AcceptsBrowserOffer(t *testing.T) {
	info, err := CheckOffer(crlf(browserOffer), OfferLimits{MaxBytes: 65536, MaxSections: 16})
	if err != nil {
		t.Fatal(err)
	}
	if info.Sections != 2 || info.SendTracks != 2 || info.VideoTracks != 1 || info.RecvTracks != 0 {
		t.Fatalf("info = %+v", info)
	}
	if strings.Join(info.TrackIDs, ",") != "mic-1,cam-1" {
		t.Fatalf("track ids = %v", info.TrackIDs)
	}
}

func TestCheckOffer_RejectsBadOffers(t *testing.T) {
	many := crlf(browserOffer)
	video := many[strings.Index(many, "m=video"):]
	for range 20 {
		many += video
	}
	cases := []struct {
		name, sdp string
		want      error
	}{
		{"empty", "", ErrInvalidSDP},
		{"garbage", "hello world", ErrInvalidSDP},
		{"no media", crlf("v=0\no=- 1 2 IN IP4 127.0.0.1\ns=-\nt=0 0\n"), ErrInvalidSDP},
		{"too large", crlf(browserOffer) + strings.Repeat("a=x:y\r\n", 20000), ErrInvalidSDP},
		{"too many m-lines", many, ErrInvalidSDP},
		{"no ufrag", strings.ReplaceAll(crlf(browserOffer), "a=ice-ufrag:abcd\r\n", ""), ErrInvalidSDP},
		{"no pwd", strings.ReplaceAll(crlf(browserOffer), "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n", ""), ErrInvalidSDP},
		{"no fingerprint", strings.ReplaceAll(crlf(browserOffer), "a=fingerprint:", "a=x-fingerprint:"), ErrInvalidSDP},
		{"ufrag of one character", strings.ReplaceAll(crlf(browserOffer), "a=ice-ufrag:abcd", "a=ice-ufrag:a"), ErrInvalidSDP},
		{"pwd of 21 characters", strings.ReplaceAll(crlf(browserOffer), "abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstu"), ErrInvalidSDP},
		{"ufrag with a non-ice-char", strings.ReplaceAll(crlf(browserOffer), "a=ice-ufrag:abcd", "a=ice-ufrag:ab-cd"), ErrInvalidSDP},
		{"ufrag of 257 characters", strings.ReplaceAll(crlf(browserOffer), "a=ice-ufrag:abcd", "a=ice-ufrag:"+strings.Repeat("u", 257)), ErrInvalidSDP},
		{"unsupported codec", strings.NewReplacer("opus/48000/2", "PCMU/8000", "VP8/90000", "theora/90000").Replace(crlf(browserOffer)), ErrUnsupportedCodec},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := CheckOffer(c.sdp, OfferLimits{MaxBytes: 65536, MaxSections: 16})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestCheckOffer_ICECredentialsAtSessionLevel(t *testing.T) {
	offer := strings.ReplaceAll(crlf(browserOffer), "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n", "")
	offer = strings.Replace(offer, "t=0 0\r\n", "t=0 0\r\na=ice-ufrag:ab+/\r\na=ice-pwd:"+strings.Repeat("Z9", 128)+"\r\n", 1)
	if _, err := CheckOffer(offer, OfferLimits{MaxBytes: 65536, MaxSections: 16}); err != nil {
		t.Fatalf("session-level credentials (4 and 256 ice-chars): %v", err)
	}
}

func TestCheckICECredentials(t *testing.T) {
	for _, c := range []struct {
		ufrag, pwd string
		ok         bool
	}{
		{"abcd", "abcdefghijklmnopqrstuv", true},
		{"a+/9", strings.Repeat("p", 256), true},
		{"abc", "abcdefghijklmnopqrstuv", false},
		{"abcd", "abcdefghijklmnopqrstu", false},
		{strings.Repeat("u", 257), "abcdefghijklmnopqrstuv", false},
		{"abcd", strings.Repeat("p", 257), false},
		{"ab=d", "abcdefghijklmnopqrstuv", false},
		{"abcd", "abcdefghijklmnopqrstu\x00", false},
		{"abcé", "abcdefghijklmnopqrstuv", false},
	} {
		err := CheckICECredentials(c.ufrag, c.pwd)
		if (err == nil) != c.ok {
			t.Errorf("CheckICECredentials(%q, %q) = %v, want ok %v", c.ufrag, c.pwd, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidSDP) {
			t.Errorf("error %v does not wrap ErrInvalidSDP", err)
		}
	}
}

func FuzzCheckOffer(f *testing.F) {
	f.Add(crlf(browserOffer))
	f.Add("v=0\r\n")
	f.Add("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		info, err := CheckOffer(s, OfferLimits{MaxBytes: 1 << 16, MaxSections: 16})
		if err == nil && (info.Sections == 0 || info.Sections > 16) {
			t.Fatalf("accepted offer with %d sections", info.Sections)
		}
		if err != nil && !errors.Is(err, ErrInvalidSDP) && !errors.Is(err, ErrUnsupportedCodec) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// Candidates trickled before the remote description are kept up to
// MaxPendingCandidates per connection; the rest are refused, not stored.
func TestAddCandidate_PendingIsBounded(t *testing.T) {
	e, err := NewEngine(testutil.SFUConfig(false), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pub, err := e.NewPublisher("p", PublisherEvents{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := e.NewSubscriber(SubscriberEvents{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	mid := "0"
	cand := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", SDPMid: &mid}
	for name, conn := range map[string]interface {
		AddCandidate(webrtc.ICECandidateInit) error
	}{"publisher": pub, "subscriber": sub} {
		refused := 0
		for range 1000 {
			if err := conn.AddCandidate(cand); err != nil {
				if !errors.Is(err, ErrTooManyCandidates) {
					t.Fatalf("%s: %v, want ErrTooManyCandidates", name, err)
				}
				refused++
			}
		}
		if refused != 1000-MaxPendingCandidates {
			t.Errorf("%s: %d of 1000 refused, want %d", name, refused, 1000-MaxPendingCandidates)
		}
	}
	pub.mu.Lock()
	np := len(pub.pending)
	pub.mu.Unlock()
	sub.mu.Lock()
	ns := len(sub.pending)
	sub.mu.Unlock()
	if np != MaxPendingCandidates || ns != MaxPendingCandidates {
		t.Errorf("pending publisher %d subscriber %d, want %d each", np, ns, MaxPendingCandidates)
	}
}

// A refused offer says why in the caller's terms (ErrInvalidSDP) and keeps
// the parser's own error in the chain, for errors.Is/As and for the log.
func TestCheckOffer_KeepsTheParsersCause(t *testing.T) {
	var parseErr error
	var sd sdp.SessionDescription
	parseErr = sd.UnmarshalString("v=x\r\n")
	if parseErr == nil {
		t.Fatal("the parser took a broken description")
	}
	_, err := CheckOffer("v=x\r\n", OfferLimits{})
	if !errors.Is(err, ErrInvalidSDP) {
		t.Fatalf("err %v is not ErrInvalidSDP", err)
	}
	var chain interface{ Unwrap() []error }
	if !errors.As(err, &chain) || len(chain.Unwrap()) != 2 || chain.Unwrap()[1].Error() != parseErr.Error() {
		t.Fatalf("the parser's error is cut out of the chain: %#v", err)
	}
}
