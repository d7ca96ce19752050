package signaling

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST API scheme is HMAC-SHA1, as coturn checks it
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TURN credentials in the TURN REST API / coturn use-auth-secret scheme:
// username "expiry:identity" (the expiry in Unix seconds), password
// base64(HMAC-SHA1(turn.secret, username)). The node's own TURN server
// and an external coturn with static-auth-secret = turn.secret
// check them the same way, so the node issues them for either.

// ICEServer is one entry of RTCConfiguration.iceServers: URLs and, for
// TURN, the credentials. It is the shape of joined's turn_servers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// TURNCredential returns the username and password for identity under
// secret, valid until expiry.
func TURNCredential(secret, identity string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + identity
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// turnURLs are the TURN URLs handed to clients: the embedded server's
// (UDP, TCP, TLS) at host, then turn.external_urls.
func (s *Server) turnURLs(host string) []string {
	t := s.cfg.Turn
	var out []string
	if t.Enabled {
		if t.Domain != "" {
			host = t.Domain
		}
		h := host
		if strings.Contains(h, ":") {
			h = "[" + h + "]" // an IPv6 literal
		}
		port := strconv.Itoa(t.Port)
		out = append(out, "turn:"+h+":"+port+"?transport=udp", "turn:"+h+":"+port+"?transport=tcp")
		if t.TLSPort != 0 && (t.ExternalTLS || t.CertFile != "") {
			tp := t.TLSPort
			if t.PublicTLSPort != 0 {
				tp = t.PublicTLSPort
			}
			out = append(out, "turns:"+h+":"+strconv.Itoa(tp)+"?transport=tcp")
		}
	}
	return append(out, t.ExternalURLs...)
}

// turnServers are the TURN servers, with fresh credentials for identity,
// for a client that reached the node at r's host; nil when the node issues
// no TURN credentials.
func (s *Server) turnServers(identity string, r *http.Request, now time.Time) []ICEServer {
	host := ""
	if r != nil {
		host = r.Host
	}
	return s.turnServersAt(identity, host, now)
}

// turnServersAt is turnServers for a client that reached the node at host
// (a Host header: name or IP, with or without a port). The WebSocket's
// joined can carry them: a socket keeps its upgrade request's Host.
func (s *Server) turnServersAt(identity, host string, now time.Time) []ICEServer {
	if !s.cfg.Turn.Enabled && len(s.cfg.Turn.ExternalURLs) == 0 {
		return nil
	}
	urls := s.turnURLs(s.turnHost(host))
	if len(urls) == 0 {
		return nil
	}
	user, pass := TURNCredential(s.cfg.TURNSecret, identity, now.Add(s.cfg.Turn.CredentialTTL))
	return []ICEServer{{URLs: urls, Username: user, Credential: pass}}
}

// turnHost is the host TURN URLs name when turn.domain is not set: that of
// http.public_url, else the one the client reached (its Host header, the
// name it resolved to this node).
func (s *Server) turnHost(hostHeader string) string {
	if u, err := url.Parse(s.cfg.HTTP.PublicURL); err == nil && s.cfg.HTTP.PublicURL != "" && u.Hostname() != "" {
		return u.Hostname()
	}
	if h, _, err := net.SplitHostPort(hostHeader); err == nil {
		return h
	}
	if hostHeader != "" {
		return strings.Trim(hostHeader, "[]")
	}
	return "localhost"
}

// linkQuote quotes v as an RFC 9110 quoted-string: backslash and quote
// escaped, control characters dropped (an identity is outside input).
func linkQuote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// turnLinkHeaders adds a Link header per TURN URL with its credentials
// (RFC 9725 section 4.6).
func turnLinkHeaders(h http.Header, servers []ICEServer) {
	for _, sv := range servers {
		for _, u := range sv.URLs {
			h.Add("Link", fmt.Sprintf(`<%s>; rel="ice-server"; username=%s; credential=%s; credential-type="password"`,
				u, linkQuote(sv.Username), linkQuote(sv.Credential)))
		}
	}
}

// withTURNLinks gives WHIP and WHEP clients TURN credentials as Link
// headers: on a session's 201 Created and on an OPTIONS of the endpoint
// that carries a valid token for the room (RFC 9725 section 4.6; an
// anonymous OPTIONS, such as a CORS preflight, gets none).
func (s *Server) withTURNLinks(next http.Handler) http.Handler {
	if !s.cfg.Turn.Enabled && len(s.cfg.Turn.ExternalURLs) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		roomName, ok := whipEndpoint(r)
		if !ok || (r.Method != http.MethodPost && r.Method != http.MethodOptions) {
			next.ServeHTTP(w, r)
			return
		}
		now := time.Now()
		spec, _, _, err := s.verify(bearer(r), roomName, now)
		if err != nil {
			next.ServeHTTP(w, r) // the handler answers a bad token itself
			return
		}
		servers := s.turnServers(spec.Identity, r, now)
		if r.Method == http.MethodOptions {
			turnLinkHeaders(w.Header(), servers)
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&linkOnCreated{ResponseWriter: w, servers: servers}, r)
	})
}

// whipEndpoint reports whether r is for /whip/{room} or /whep/{room} (not
// a session resource) and returns the room.
func whipEndpoint(r *http.Request) (string, bool) {
	p := r.URL.Path
	var rest string
	switch {
	case strings.HasPrefix(p, "/whip/"):
		rest = p[len("/whip/"):]
	case strings.HasPrefix(p, "/whep/"):
		rest = p[len("/whep/"):]
	default:
		return "", false
	}
	if rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	return rest, true
}

// linkOnCreated adds the Link headers to a 201 Created only.
type linkOnCreated struct {
	http.ResponseWriter
	servers []ICEServer
	wrote   bool
}

// WriteHeader adds the links to a 201.
func (l *linkOnCreated) WriteHeader(code int) {
	if !l.wrote && code == http.StatusCreated {
		turnLinkHeaders(l.Header(), l.servers)
	}
	l.wrote = true
	l.ResponseWriter.WriteHeader(code)
}

// Write writes the body (a 200 when no status was written).
func (l *linkOnCreated) Write(p []byte) (int, error) {
	l.wrote = true
	return l.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (l *linkOnCreated) Unwrap() http.ResponseWriter { return l.ResponseWriter }
