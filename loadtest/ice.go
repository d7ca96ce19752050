package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// ICEMode is how a synthetic client reaches the server's media: directly
// (the default), or only through the server's TURN relay over one
// transport, to size a TURN deployment (halo-loadtest --ice).
type ICEMode string

// The ICE modes.
const (
	// ICEDirect uses every candidate, as a client on an open network does.
	ICEDirect ICEMode = ""
	// ICERelayUDP uses only a relay reached over UDP (turn:...?transport=udp).
	ICERelayUDP ICEMode = "relay-udp"
	// ICERelayTCP uses only a relay reached over TCP (turn:...?transport=tcp).
	ICERelayTCP ICEMode = "relay-tcp"
	// ICERelayTLS uses only a relay reached over TLS (turns:).
	ICERelayTLS ICEMode = "relay-tls"
)

// ParseICEMode reads a --ice value: "", "direct", "relay-udp",
// "relay-tcp" or "relay-tls".
func ParseICEMode(s string) (ICEMode, error) {
	switch m := ICEMode(strings.ToLower(strings.TrimSpace(s))); m {
	case ICEDirect, "direct":
		return ICEDirect, nil
	case ICERelayUDP, ICERelayTCP, ICERelayTLS:
		return m, nil
	}
	return "", fmt.Errorf("loadtest: --ice %q is not direct, relay-udp, relay-tcp or relay-tls", s)
}

// picks reports whether a TURN URL is the one mode relays through.
func (m ICEMode) picks(u string) bool {
	switch m {
	case ICERelayUDP:
		return strings.HasPrefix(u, "turn:") && strings.Contains(u, "transport=udp")
	case ICERelayTCP:
		return strings.HasPrefix(u, "turn:") && strings.Contains(u, "transport=tcp")
	case ICERelayTLS:
		return strings.HasPrefix(u, "turns:")
	}
	return false
}

// Link is one Link header value (RFC 8288): the target and its parameters,
// names lower-cased, quoted values unescaped.
type Link struct {
	URL    string
	Params map[string]string
}

// maxLinks bounds what ParseLinks returns: a server's ICE servers are a
// handful; more is a broken or hostile server.
const maxLinks = 64

// ParseLinks parses Link header values, each one or more comma-separated
// links. What does not parse is skipped; it never fails.
func ParseLinks(values []string) []Link {
	var out []Link
	for _, v := range values {
		for len(v) > 0 && len(out) < maxLinks {
			v = strings.TrimLeft(v, " \t,")
			if !strings.HasPrefix(v, "<") {
				// Not a link: skip to the next comma outside quotes.
				v = skipPast(v, ',')
				continue
			}
			end := strings.IndexByte(v, '>')
			if end < 0 {
				break
			}
			l := Link{URL: v[1:end], Params: map[string]string{}}
			v = v[end+1:]
			for {
				v = strings.TrimLeft(v, " \t")
				if !strings.HasPrefix(v, ";") {
					break
				}
				v = strings.TrimLeft(v[1:], " \t")
				name := v
				if i := strings.IndexAny(v, "=;, \t"); i >= 0 {
					name = v[:i]
				}
				v = strings.TrimLeft(v[len(name):], " \t")
				value := ""
				if strings.HasPrefix(v, "=") {
					value, v = paramValue(strings.TrimLeft(v[1:], " \t"))
				}
				if name != "" {
					l.Params[strings.ToLower(name)] = value
				}
			}
			out = append(out, l)
			v = skipPast(v, ',')
		}
	}
	return out
}

// paramValue reads a token or a quoted-string from the start of v and
// returns it with the rest of v.
func paramValue(v string) (string, string) {
	if !strings.HasPrefix(v, `"`) {
		i := strings.IndexAny(v, ";,")
		if i < 0 {
			return strings.TrimSpace(v), ""
		}
		return strings.TrimSpace(v[:i]), v[i:]
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			if i+1 < len(v) {
				i++
				b.WriteByte(v[i])
			}
		case '"':
			return b.String(), v[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "" // unterminated: what there was
}

// skipPast returns v after the first sep outside a quoted string.
func skipPast(v string, sep byte) string {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			return v[i+1:]
		}
	}
	return ""
}

// errNoRelay is RelayICEServers' error for a server without a TURN URL of
// the mode.
var errNoRelay = errors.New("loadtest: the server offers no TURN URL for this --ice mode")

// RelayICEServers asks a WHIP/WHEP endpoint for its TURN servers as RFC
// 9725 section 4.6 has it (OPTIONS with the token; Link headers of rel
// "ice-server" with username and credential) and returns those mode
// relays through.
func RelayICEServers(ctx context.Context, endpoint, token string, mode ICEMode) ([]webrtc.ICEServer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("loadtest: ICE servers of %s: %w", endpoint, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := whipClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadtest: ICE servers of %s: %w", endpoint, err)
	}
	_ = resp.Body.Close()
	var out []webrtc.ICEServer
	for _, l := range ParseLinks(resp.Header.Values("Link")) {
		if !strings.EqualFold(l.Params["rel"], "ice-server") || !mode.picks(l.URL) {
			continue
		}
		user, ok := l.Params["username"]
		if !ok {
			continue
		}
		out = append(out, webrtc.ICEServer{URLs: []string{l.URL}, Username: user, Credential: l.Params["credential"],
			CredentialType: webrtc.ICECredentialTypePassword})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w (%s, %s)", errNoRelay, endpoint, mode)
	}
	return out, nil
}

// RelayConfiguration is the peer connection configuration of a client in
// a relay mode: only relay candidates, through servers.
func RelayConfiguration(servers []webrtc.ICEServer) webrtc.Configuration {
	return webrtc.Configuration{ICEServers: servers, ICETransportPolicy: webrtc.ICETransportPolicyRelay}
}

// ApplyICEMode sets what a relay mode needs on se: TURN over TCP and TLS
// go through a dialer of ours, so that TLS is checked with tlsConf (the
// system's roots when nil; a test's self-signed certificate needs its own
// RootCAs or InsecureSkipVerify), which Pion's own TLS to a turns: server
// does not let a caller set.
func ApplyICEMode(se *webrtc.SettingEngine, mode ICEMode, tlsConf *tls.Config) {
	if mode == ICERelayTCP || mode == ICERelayTLS {
		se.SetICEProxyDialer(&turnDialer{tls: mode == ICERelayTLS, conf: tlsConf})
	}
}

// turnDialer dials a TURN server over TCP, and TLS on top for turns:. Pion
// hands it the TURN connections of relay-tcp and relay-tls.
type turnDialer struct {
	tls  bool
	conf *tls.Config
}

// Dial connects to addr (host:port of the TURN URL).
func (d *turnDialer) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil || !d.tls {
		return c, err
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if d.conf != nil {
		conf = d.conf.Clone()
	}
	if conf.ServerName == "" {
		conf.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("loadtest: TLS to TURN server %s: %w", addr, err)
	}
	return tc, nil
}
