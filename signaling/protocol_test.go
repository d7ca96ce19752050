package signaling

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/auth"
)

func TestDecodeEnvelope(t *testing.T) {
	cases := []struct {
		frame, code, typ string
	}{
		{`{"v":1,"type":"join","id":3,"data":{}}`, "", "join"},
		{`{"type":"leave"}`, "", "leave"},
		{` {"type":"chat","data":{"text":"hi"}} `, "", "chat"},
		{``, CodeBadJSON, ""},
		{`null`, CodeBadJSON, ""},
		{`[]`, CodeBadJSON, ""},
		{`{"type":`, CodeBadJSON, ""},
		{"{\"type\":\"x\xff\"}", CodeBadJSON, ""},
		{`{"v":"1","type":"join"}`, CodeBadJSON, ""},
		{`{"v":2,"type":"join"}`, CodeUnsupportedVersion, ""},
		{`{"v":1}`, CodeBadRequest, ""},
		{`{"v":1,"type":"join","id":-1}`, CodeBadRequest, ""},
	}
	for _, c := range cases {
		env, err := decodeEnvelope([]byte(c.frame))
		switch {
		case c.code == "" && err != nil:
			t.Errorf("%q: unexpected error %v", c.frame, err)
		case c.code != "" && (err == nil || err.Code != c.code):
			t.Errorf("%q: got %v, want code %s", c.frame, err, c.code)
		case c.code == "" && env.Type != c.typ:
			t.Errorf("%q: type %q", c.frame, env.Type)
		}
	}
}

func TestDecodeData_RejectsNonObjects(t *testing.T) {
	var d joinData
	if err := decodeData(envelope{Data: []byte(`"x"`)}, &d); err == nil || err.Code != CodeBadRequest {
		t.Fatalf("string data: %v", err)
	}
	if err := decodeData(envelope{Data: []byte(`{"token": 5}`)}, &d); err == nil || err.Code != CodeBadRequest {
		t.Fatalf("wrong field type: %v", err)
	}
	if err := decodeData(envelope{}, &d); err != nil {
		t.Fatalf("missing data must decode as {}: %v", err)
	}
}

// toWire is the one map from internal errors to wire codes; every sentinel
// below must keep its code (clients depend on them).
func TestToWire_MapsEveryError(t *testing.T) {
	cases := map[error]string{
		auth.ErrExpired:          CodeUnauthorized,
		auth.ErrSignature:        CodeUnauthorized,
		room.ErrForbidden:        CodeForbidden,
		room.ErrRoomFull:         CodeRoomFull,
		room.ErrDraining:         CodeShuttingDown,
		room.ErrUnknownTrack:     CodeUnknownTrack,
		room.ErrTooManyTracks:    CodeTooManyTracks,
		room.ErrNoTracks:         CodeNotFound,
		room.ErrInvalidSDP:       CodeInvalidSDP,
		room.ErrUnsupportedCodec: CodeUnsupportedCodec,
		room.ErrNoOffer:          CodeBadRequest,
		errors.New("boom"):       CodeInternal,
	}
	for err, code := range cases {
		wrapped := errors.Join(errors.New("context"), err)
		if got := toWire(wrapped).Code; got != code {
			t.Errorf("%v -> %s, want %s", err, got, code)
		}
	}
	if !toWire(room.ErrRoomFull).Fatal || toWire(room.ErrInvalidSDP).Fatal {
		t.Error("fatal flags wrong")
	}
}

func TestParseSDPFrag(t *testing.T) {
	f, mid, err := parseSDPFrag("a=ice-ufrag:u1u1\r\na=ice-pwd:p1p1p1p1p1p1p1p1p1p1p1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n")
	if err != nil || f.Ufrag != "u1u1" || f.Pwd != "p1p1p1p1p1p1p1p1p1p1p1" || mid != "1" || len(f.Candidates) != 1 {
		t.Fatalf("%+v %q %v", f, mid, err)
	}
	for _, bad := range []string{"hello", "a=ice-ufrag:only\r\n", "a=candidate:1 2\r\n", strings.Repeat("a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n", 70),
		// RFC 8839: ufrag 4-256 and pwd 22-256 ice-chars.
		"a=ice-ufrag:a\r\na=ice-pwd:p1p1p1p1p1p1p1p1p1p1p1\r\n",
		"a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n",
		"a=ice-ufrag:ab cd\r\na=ice-pwd:p1p1p1p1p1p1p1p1p1p1p1\r\n",
		"a=ice-ufrag:abc;\r\na=ice-pwd:p1p1p1p1p1p1p1p1p1p1p1\r\n",
		"a=ice-ufrag:" + strings.Repeat("u", 257) + "\r\na=ice-pwd:p1p1p1p1p1p1p1p1p1p1p1\r\n",
	} {
		if _, _, err := parseSDPFrag(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestJoinLimiter_SlidingMinute(t *testing.T) {
	l := newJoinLimiter(2)
	now := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	if !l.allow("a", now) || !l.allow("a", now) || l.allow("a", now) {
		t.Fatal("third join within the minute allowed")
	}
	if !l.allow("b", now) {
		t.Fatal("limit shared across addresses")
	}
	if !l.allow("a", now.Add(2*time.Minute)) {
		t.Fatal("limit never resets")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"join","id":1,"data":{"token":"x","room":"r"}}`))
	f.Add([]byte(`{"type":"publish","data":{"sdp":"v=0","tracks":[{"track_id":"a","source":"camera"}]}}`))
	f.Add([]byte(`{"type":"trickle","data":{"target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0"}}}`))
	f.Add([]byte(`{"type":"reaction","data":{"emoji":"👍🏽"}}`))
	f.Add([]byte(`{"type":"reaction","data":{"emoji":"a b\u0000"}}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		env, err := decodeEnvelope(frame)
		if err != nil {
			if err.Code == "" {
				t.Fatal("error without a code")
			}
			return
		}
		for _, v := range []any{&joinData{}, &publishData{}, &trickleData{}, &trackIDsData{}, &chatData{}, &reactionData{}, &sdpData{}, &refreshData{}} {
			if e := decodeData(env, v); e != nil && e.Code != CodeBadRequest {
				t.Fatalf("decodeData code %s", e.Code)
			}
		}
		var r reactionData
		if decodeData(env, &r) == nil && validEmoji(r.Emoji) && (len(r.Emoji) > maxEmojiBytes || strings.ContainsAny(r.Emoji, " \t\n\x00")) {
			t.Fatalf("reaction %q accepted", r.Emoji)
		}
	})
}

func FuzzParseSDPFrag(f *testing.F) {
	f.Add("a=ice-ufrag:u\r\na=ice-pwd:p\r\na=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n")
	f.Add("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=end-of-candidates\r\n")
	f.Add("m=audio 9 RTP/AVP 0\r\na=end-of-candidates\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		frag, mid, err := parseSDPFrag(s)
		if err != nil {
			return
		}
		if len(frag.Candidates) > 64 || len(mid) > 32 {
			t.Fatalf("accepted %d candidates, mid of %d bytes", len(frag.Candidates), len(mid))
		}
		if frag.Ufrag != "" && room.CheckICECredentials(frag.Ufrag, frag.Pwd) != nil {
			t.Fatalf("accepted credentials %q %q outside RFC 8839", frag.Ufrag, frag.Pwd)
		}
		if (frag.Ufrag == "") != (frag.Pwd == "") {
			t.Fatal("accepted a ufrag without a pwd or the reverse")
		}
	})
}

func TestValidEmoji(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"👍", true}, {"👨‍👩‍👧‍👦", true}, {"🇳🇵", true}, {"👏🏽", true}, {"+1", true},
		{"", false}, {" ", false}, {"a b", false}, {"\x00", false}, {"\u200b\n", false}, {"\u200b", false}, {"\u200d\ufe0f", false},
		{strings.Repeat("👍", 9), false},
	} {
		if got := validEmoji(c.in); got != c.ok {
			t.Errorf("validEmoji(%q) = %v, want %v", c.in, got, c.ok)
		}
	}
}
