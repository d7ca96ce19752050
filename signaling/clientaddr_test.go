package signaling

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestClientAddrs_TrustXForwardedForOnlyFromTrustedProxies(t *testing.T) {
	c := newClientAddrs([]string{"10.0.0.0/8", "192.0.2.7", "fd00::/8"})
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no proxy, no header", "203.0.113.5:4000", nil, "203.0.113.5"},
		{"untrusted peer: header ignored", "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted proxy, one hop", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"rightmost untrusted hop wins over a forged left part", "10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:4000", []string{"198.51.100.1, 192.0.2.7, 10.9.9.9"}, "198.51.100.1"},
		{"several headers read as one list", "10.1.2.3:4000", []string{"6.6.6.6", "198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"every hop trusted: the leftmost", "10.1.2.3:4000", []string{"10.7.7.7, 10.8.8.8"}, "10.7.7.7"},
		{"garbage hop: the proxy's own address", "10.1.2.3:4000", []string{"not-an-ip"}, "10.1.2.3"},
		{"hop with a port", "10.1.2.3:4000", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"IPv6 hop in brackets", "[fd00::1]:4000", []string{"[2001:db8::9]:5555"}, "2001:db8::9"},
		{"trusted proxy, no header", "10.1.2.3:4000", nil, "10.1.2.3"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, tc := range cases {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		for _, h := range tc.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		if got := c.of(r).String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestLimitKey_IPv6CountsAsItsSlash64(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"198.51.100.1", "198.51.100.1"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := limitKey(netip.MustParseAddr(tc.addr), tc.addr); got != tc.want {
			t.Errorf("limitKey(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

// The join limiter forgets addresses whose bucket is full again, so a flood
// of distinct addresses does not grow it for ever.
func TestJoinLimiter_ForgetsIdleAddresses(t *testing.T) {
	l := newJoinLimiter(5)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10000 {
		l.allow(fmt.Sprintf("198.51.%d.%d", i/256, i%256), now)
	}
	l.allow("203.0.113.1", now.Add(2*time.Minute))
	if n := len(l.m); n != 1 {
		t.Fatalf("%d addresses remembered after they went idle, want 1", n)
	}
}

func TestCounter_CapsAndReleases(t *testing.T) {
	c := newCounter(2)
	r1, ok1 := c.acquire("a")
	_, ok2 := c.acquire("a")
	_, ok3 := c.acquire("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("acquire: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := c.acquire("b"); !ok {
		t.Fatal("cap shared across keys")
	}
	r1()
	r1() // releasing twice gives back one place only
	if c.open("a") != 1 {
		t.Fatalf("open(a) = %d after one release, want 1", c.open("a"))
	}
	if _, ok := c.acquire("a"); !ok {
		t.Fatal("a released place was not reusable")
	}
}

// X-Forwarded-For is outside input: parsing it never panics, and the client
// is the peer or one of the hops written.
func FuzzClientAddrsOf(f *testing.F) {
	f.Add("10.0.0.1:1", "198.51.100.1, 10.0.0.2")
	f.Add("[fd00::1]:1", "[2001:db8::1]:80,garbage,,")
	f.Add("10.0.0.1:1", "")
	c := newClientAddrs([]string{"10.0.0.0/8", "fd00::/8"})
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		a := c.of(r)
		if a.IsValid() {
			_ = limitKey(a, remote)
		}
	})
}
