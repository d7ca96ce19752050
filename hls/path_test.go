package hls

import (
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParsePath(t *testing.T) {
	for _, c := range []struct {
		path, room, file string
		ok               bool
	}{
		{"/hls/tv/index.m3u8", "tv", "index.m3u8", true},
		{"/hls/my-room_1/abc_video1_part3.mp4", "my-room_1", "abc_video1_part3.mp4", true},
		{"/hls/tv/index.txt", "", "", false},
		{"/hls/tv/a/index.m3u8", "", "", false},
		{"/hls/../index.m3u8", "", "", false},
		{"/hls//index.m3u8", "", "", false},
		{"/hls/tv/", "", "", false},
		{"/hls/t v/index.m3u8", "", "", false},
		{"/whep/tv/index.m3u8", "", "", false},
		{"/hls/" + strings.Repeat("a", 129) + "/index.m3u8", "", "", false},
	} {
		room, file, ok := parsePath(c.path)
		if ok != c.ok || room != c.room || file != c.file {
			t.Errorf("parsePath(%q) = %q, %q, %v", c.path, room, file, ok)
		}
	}
}

// FuzzParsePath: any request path is refused or split into a room and a
// file of safe characters (no separator, no parent directory).
func FuzzParsePath(f *testing.F) {
	f.Add("/hls/tv/index.m3u8")
	f.Add("/hls/../x.mp4")
	f.Add("/hls/a/b/c.m3u8")
	f.Fuzz(func(t *testing.T, p string) {
		room, file, ok := parsePath(p)
		if !ok {
			return
		}
		if strings.ContainsAny(room+file, "/\\\x00 ") || strings.Trim(room, ".") == "" || room == "" || file == "" {
			t.Fatalf("parsePath(%q) = %q, %q", p, room, file)
		}
		if "/hls/"+room+"/"+file != p {
			t.Fatalf("parsePath(%q) does not rebuild the path", p)
		}
	})
}

// A signed query opens its room until it expires; tampering with it, using
// it for another room or after its expiry is refused with its code.
func TestCheckSignature(t *testing.T) {
	secret := strings.Repeat("0123456789abcdef", 2)
	now := time.Unix(1_800_000_000, 0)
	good, _ := url.ParseQuery(Sign(secret, "tv", now.Add(time.Minute)))
	if e := checkSignature(secret, "tv", good, now); e != nil {
		t.Fatalf("a good signature: %v", e)
	}
	for name, c := range map[string]struct {
		room, q string
		at      time.Time
		code    string
	}{
		"other room":   {"tv2", good.Encode(), now, CodeBadSignature},
		"expired":      {"tv", good.Encode(), now.Add(2 * time.Minute), CodeExpired},
		"other exp":    {"tv", "exp=1800000999&sig=" + good.Get("sig"), now, CodeBadSignature},
		"missing":      {"tv", "", now, CodeBadSignature},
		"short sig":    {"tv", "exp=1800000060&sig=abcd", now, CodeBadSignature},
		"bad exp":      {"tv", "exp=-1&sig=" + good.Get("sig"), now, CodeBadSignature},
		"other secret": {"tv", Sign(strings.Repeat("x9", 16), "tv", now.Add(time.Minute)), now, CodeBadSignature},
	} {
		q, _ := url.ParseQuery(c.q)
		e := checkSignature(secret, c.room, q, c.at)
		if e == nil || e.Code != c.code || e.Status != 403 {
			t.Errorf("%s: %v, want 403 %s", name, e, c.code)
		}
	}
}

// FuzzCheckSignature: any query is checked without a panic, and only the
// right signature opens the room.
func FuzzCheckSignature(f *testing.F) {
	secret := strings.Repeat("0123456789abcdef", 2)
	f.Add("exp=1800000060&sig=00")
	f.Add(Sign(secret, "tv", time.Unix(1_800_000_060, 0)))
	f.Add("exp=99999999999999999999&sig=zz&exp=1")
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		e := checkSignature(secret, "tv", q, time.Unix(1_800_000_000, 0))
		if e == nil && !strings.EqualFold(q.Get("sig"), hex.EncodeToString(mac(secret, "tv", q.Get("exp")))) {
			t.Fatalf("query %q accepted", raw)
		}
	})
}
