package loadtest

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// A lean viewer on a lossy link asks for what it missed with NACKs of its
// own (Pion's generator fed by its read loop), naming packets it did not
// get, and counts the gaps.
func TestLeanViewer_NACKsWhatItMissed(t *testing.T) {
	room := newFakeRoom(t)
	ctx := testCtx(t)
	startPublisher(t, ctx, PublisherConfig{URL: room.url(), Token: "tok", VideoBitrate: 300_000, NoAudio: true})
	v := NewViewer(ViewerConfig{URL: room.url(), Room: "demo", Token: "tok", Lean: true})
	dropping := make(chan struct{})
	v.onLean = func(lp *leanPeer) { lp.dropEvery.Store(25); close(dropping) }
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	<-dropping
	if err := v.WaitTracks(ctx, 1); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyCtx(ctx, t, "NACKs at the server", func() bool { return len(room.receivedNACKs()) >= 3 })
	if s := v.Stats(); s.LostRaw == 0 {
		t.Fatalf("stats %+v: no gap counted on a lossy link", s)
	}
	ssrc := v.videoSSRC.Load()
	for _, r := range room.receivedNACKs() {
		if r.nack.MediaSSRC != ssrc || r.ssrc != ssrc || len(r.nack.Nacks) == 0 {
			t.Fatalf("NACK %+v for down-track %d, want the viewer's video %d", r.nack, r.ssrc, ssrc)
		}
	}
}

// The answer to a server's offer receives what we can read (VP8, H.264,
// Opus) and rejects the rest, echoing mids, parameters, feedback and the
// transport-cc extension.
func TestLeanAnswer_ReceivesVP8AndOpusRejectsTheRest(t *testing.T) {
	offer := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE a v d\r\n" +
		"a=ice-ufrag:srvU\r\na=ice-pwd:srvpasswordsrvpassword\r\na=fingerprint:sha-256 ab:cd\r\na=setup:actpass\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:a\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n" +
		"a=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 98 96 102\r\nc=IN IP4 0.0.0.0\r\na=mid:v\r\na=sendonly\r\na=rtpmap:98 VP9/90000\r\n" +
		"a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 goog-remb\r\n" +
		"a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1\r\n" +
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:d\r\n"
	r, err := parseLeanRemote(offer)
	if err != nil {
		t.Fatal(err)
	}
	if r.ufrag != "srvU" || r.fingerprint != "AB:CD" || len(r.candidates) != 1 || r.tccID != 5 {
		t.Fatalf("remote %+v", r)
	}
	if p := r.payloads[96]; !p.video || p.clock != 90000 || !p.nack {
		t.Fatalf("VP8 payload %+v", p)
	}
	if p := r.payloads[102]; !p.video || !p.h264 || p.nack {
		t.Fatalf("H.264 payload %+v", p)
	}
	if p, ok := r.payloads[98]; ok {
		t.Fatalf("VP9 taken: %+v", p)
	}
	ans := leanAnswer(r, leanLocal{ufrag: "me", pwd: "pw", fingerprint: "EF", setup: "active"})
	for _, want := range []string{"a=group:BUNDLE a v\r\n", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\n", "a=fmtp:102 packetization-mode=1\r\n",
		"a=rtcp-fb:96 nack pli\r\n", "a=extmap:5 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n",
		"m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n", "a=setup:active\r\n", "a=recvonly\r\n"} {
		if !strings.Contains(ans, want) {
			t.Errorf("answer lacks %q:\n%s", want, ans)
		}
	}
	if strings.Contains(ans, "goog-remb") || strings.Contains(ans, "VP9") {
		t.Errorf("answer takes what it cannot do:\n%s", ans)
	}
}

// An offer of H.264 only is answered with H.264 and its parameters.
func TestLeanAnswer_H264EchoesItsParameters(t *testing.T) {
	offer := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"a=ice-ufrag:srvU\r\na=ice-pwd:srvpasswordsrvpassword\r\na=fingerprint:sha-256 ab:cd\r\na=setup:actpass\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 125\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:125 H264/90000\r\n" +
		"a=fmtp:125 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=rtcp-fb:125 nack\r\n"
	r, err := parseLeanRemote(offer)
	if err != nil {
		t.Fatal(err)
	}
	ans := leanAnswer(r, leanLocal{ufrag: "me", pwd: "pw", fingerprint: "EF", setup: "active"})
	for _, want := range []string{"m=video 9 UDP/TLS/RTP/SAVPF 125\r\n", "a=rtpmap:125 H264/90000\r\n",
		"a=fmtp:125 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n", "a=rtcp-fb:125 nack\r\n"} {
		if !strings.Contains(ans, want) {
			t.Errorf("answer lacks %q:\n%s", want, ans)
		}
	}
	if p := r.payloads[125]; !p.h264 || !p.nack {
		t.Fatalf("payload %+v", p)
	}
}

// Any bytes as a server's SDP give a leanRemote or an error, never a
// panic.
func FuzzParseLeanRemote(f *testing.F) {
	f.Add("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\na=fingerprint:sha-256 AB\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=extmap:3/recvonly http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n")
	f.Add("v=0\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := parseLeanRemote(raw)
		if err != nil {
			return
		}
		_ = leanAnswer(r, leanLocal{})
		p := &leanPeer{}
		for _, c := range r.candidates {
			p.addCandidateLocked(c)
		}
	})
}

// Whatever arrives at a lean viewer's socket (STUN, DTLS, SRTP, SRTCP or
// noise) is handled or dropped, never a panic; packets that decrypt go
// through the feedback interceptors and the measuring code, whatever their
// header and payload (VP8, H.264, Opus).
func FuzzLeanPeerHandle(f *testing.F) {
	key, salt := make([]byte, 16), make([]byte, 12)
	for i := range key {
		key[i] = byte(i)
	}
	vp8 := append([]byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7}, 0x90, 0x80, 0x80, 0x01, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a)
	h264 := append([]byte{0x80, 102 | 0x80, 0, 2, 0, 0, 0, 2, 0, 0, 0, 8}, 0x78, 0, 2, 0x67, 0x42)
	f.Add(vp8, true)
	f.Add(h264, true)
	f.Add([]byte{0x80, 111, 0, 3, 0, 0, 0, 3, 0, 0, 0, 9, 0xfc}, true)
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}, false)     // STUN-like
	f.Add([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0}, false) // DTLS-like
	f.Add([]byte{0x80, 200, 0, 6, 0, 0, 0, 1}, true)             // RTCP sender report
	v := NewViewer(ViewerConfig{Lean: true})
	p, err := newLeanPeer(v, true, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = p.Close() })
	p.payloads = map[uint8]leanPayload{96: {video: true, clock: 90000, nack: true}, 102: {video: true, h264: true, clock: 90000}, 111: {clock: 48000}}
	p.tccID = 3
	dec, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTPReplayProtection(1024))
	if err != nil {
		f.Fatal(err)
	}
	enc, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		f.Fatal(err)
	}
	p.decrypt.Store(dec)
	from := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, b []byte, encrypt bool) {
		if len(b) == 0 {
			return
		}
		if encrypt {
			var out []byte
			var err error
			if len(b) >= 2 && b[1] >= 192 && b[1] <= 223 {
				out, err = enc.EncryptRTCP(nil, b, nil)
			} else {
				out, err = enc.EncryptRTP(nil, b, nil)
			}
			if err == nil {
				b = out
			}
		}
		p.handle(b, from)
	})
}

// BenchmarkLeanPeerHandle is a lean viewer's per-packet work after the
// socket: decryption, the feedback interceptors, transport-cc recording and
// the measuring code, on VP8 packets with a transport-cc extension.
func BenchmarkLeanPeerHandle(b *testing.B) {
	key, salt := make([]byte, 16), make([]byte, 12)
	v := NewViewer(ViewerConfig{Lean: true})
	p, err := newLeanPeer(v, true, false)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	p.payloads = map[uint8]leanPayload{96: {video: true, clock: 90000, nack: true}}
	p.tccID = 3
	dec, _ := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTPReplayProtection(1024))
	enc, _ := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	p.decrypt.Store(dec)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 7, Timestamp: 1}, Payload: make([]byte, 1100)}
	putVP8Descriptor(pkt.Payload, true, 1)
	var tcc [2]byte
	plain := make([]byte, 0, 1500)
	wire := make([]byte, 0, 1500)
	from := netip.MustParseAddrPort("127.0.0.1:9")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		pkt.SequenceNumber = uint16(i)
		tcc[0], tcc[1] = byte(i>>8), byte(i)
		_ = pkt.Header.SetExtension(3, tcc[:])
		n, err := pkt.MarshalTo(plain[:cap(plain)])
		if err != nil {
			b.Fatal(err)
		}
		out, err := enc.EncryptRTP(wire[:0], plain[:n], nil)
		if err != nil {
			b.Fatal(err)
		}
		p.handle(out, from)
	}
	if got := v.videoPackets.Load(); got != uint64(b.N) {
		b.Fatalf("%d of %d packets measured", got, b.N)
	}
}
