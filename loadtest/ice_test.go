package loadtest

import (
	"reflect"
	"testing"
)

func TestParseICEMode(t *testing.T) {
	for in, want := range map[string]ICEMode{"": ICEDirect, "direct": ICEDirect, "relay-udp": ICERelayUDP, "Relay-TCP": ICERelayTCP, " relay-tls ": ICERelayTLS} {
		if got, err := ParseICEMode(in); err != nil || got != want {
			t.Errorf("ParseICEMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"relay", "tls", "relay-dtls", "udp"} {
		if _, err := ParseICEMode(bad); err == nil {
			t.Errorf("ParseICEMode(%q) accepted", bad)
		}
	}
}

func TestParseLinks_ReadsTheServersICELinks(t *testing.T) {
	got := ParseLinks([]string{
		`<turn:h:3478?transport=udp>; rel="ice-server"; username="17:fan \"q\" \\ one"; credential="ab+/="; credential-type="password"`,
		`<stun:s:3478>; rel=ice-server, <turns:h:443?transport=tcp>; rel="ice-server"; username="u"; credential="c,d"`,
		`garbage, <x>; a; b=, <unterminated`,
	})
	want := []Link{
		{URL: "turn:h:3478?transport=udp", Params: map[string]string{"rel": "ice-server", "username": `17:fan "q" \ one`, "credential": "ab+/=", "credential-type": "password"}},
		{URL: "stun:s:3478", Params: map[string]string{"rel": "ice-server"}},
		{URL: "turns:h:443?transport=tcp", Params: map[string]string{"rel": "ice-server", "username": "u", "credential": "c,d"}},
		{URL: "x", Params: map[string]string{"a": "", "b": ""}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseLinks:\n got %+v\nwant %+v", got, want)
	}
}

func TestICEMode_PicksItsTURNURL(t *testing.T) {
	urls := []string{"turn:h:3478?transport=udp", "turn:h:3478?transport=tcp", "turns:h:5349?transport=tcp", "stun:h:3478"}
	for mode, want := range map[ICEMode]string{ICERelayUDP: urls[0], ICERelayTCP: urls[1], ICERelayTLS: urls[2]} {
		var picked []string
		for _, u := range urls {
			if mode.picks(u) {
				picked = append(picked, u)
			}
		}
		if len(picked) != 1 || picked[0] != want {
			t.Errorf("%s picks %v, want %s", mode, picked, want)
		}
	}
}

// FuzzParseLinks: Link headers come from the server under test; parsing
// never panics, never loops, and returns at most maxLinks.
func FuzzParseLinks(f *testing.F) {
	for _, s := range []string{`<turn:h:3478?transport=udp>; rel="ice-server"; username="a\"b"; credential="c"`, `<a>, <b>;x="`, `"<,>"`, `<`, `;;;,,,<>`, `<a>; b="\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n := len(ParseLinks([]string{s, s})); n > maxLinks {
			t.Fatalf("%d links", n)
		}
	})
}
