package signaling

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/halobuzz/live/internal/id"
	"github.com/halobuzz/live/room"
)

// WHIP (RFC 9725) and WHEP: one HTTP exchange creates a session, whose
// resource URL is then used to trickle candidates or restart ICE (PATCH) and
// to end it (DELETE). The resource id is 128 random bits: knowing the URL is
// what authorises PATCH and DELETE, as in the RFC.

const (
	mimeSDP     = "application/sdp"
	mimeSDPFrag = "application/trickle-ice-sdpfrag"
)

type session struct {
	id   string
	kind string // whip or whep
	room string
	p    *room.Participant
	etag string
	mu   sync.Mutex // serialises PATCHes
	// pending is the WHEP session's place among the pending sessions
	// (pending.go), given back when it connects or ends.
	pending *pendingSlot
}

// sessions are the WHIP and WHEP session resources of the node, by id.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func newSessions() *sessions { return &sessions{m: map[string]*session{}} }

func (s *sessions) add(x *session) {
	s.mu.Lock()
	s.m[x.id] = x
	s.mu.Unlock()
}

func (s *sessions) get(kind, roomName, id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.m[id]
	if x == nil || x.kind != kind || x.room != roomName {
		return nil
	}
	return x
}

func (s *sessions) remove(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.m[id]
	delete(s.m, id)
	return x
}

func (s *sessions) closeAll() {
	s.mu.Lock()
	all := s.m
	s.m = map[string]*session{}
	s.mu.Unlock()
	for _, x := range all {
		x.p.Leave()
	}
}

// sessionSink receives a WHIP/WHEP participant's room events. There is no
// channel to the client: only the end of the session and its connection
// coming up (it stops being pending) matter.
type sessionSink struct {
	s       *Server
	id      string
	pending *pendingSlot
}

// Event implements room.EventSink.
func (k sessionSink) Event(ev room.Event) {
	switch ev.(type) {
	case room.Closed:
		k.pending.release()
		k.s.whip.remove(k.id)
	case room.MediaConnected:
		k.pending.release()
	}
}

func (s *Server) routeWHIP(mux *http.ServeMux) {
	for _, kind := range []string{"whip", "whep"} {
		mux.HandleFunc("POST /"+kind+"/{room}", func(w http.ResponseWriter, r *http.Request) { s.handleWHIPPost(w, r, kind) })
		mux.HandleFunc("OPTIONS /"+kind+"/{room}", func(w http.ResponseWriter, r *http.Request) { s.handleWHIPOptions(w, r, "POST, OPTIONS") })
		mux.HandleFunc("PATCH /"+kind+"/{room}/{id}", func(w http.ResponseWriter, r *http.Request) { s.handleWHIPPatch(w, r, kind) })
		mux.HandleFunc("DELETE /"+kind+"/{room}/{id}", func(w http.ResponseWriter, r *http.Request) { s.handleWHIPDelete(w, r, kind) })
		mux.HandleFunc("OPTIONS /"+kind+"/{room}/{id}", func(w http.ResponseWriter, r *http.Request) { s.handleWHIPOptions(w, r, "PATCH, DELETE, OPTIONS") })
		mux.HandleFunc("/"+kind+"/{room}", methodNotAllowed("POST, OPTIONS"))
		mux.HandleFunc("/"+kind+"/{room}/{id}", methodNotAllowed("PATCH, DELETE, OPTIONS"))
	}
}

// methodNotAllowed answers 405 with the Allow header. The web page's
// catch-all "/" would otherwise answer a known path's wrong method with 404;
// a pattern without a method sits between the two.
func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		http.Error(w, "method not allowed: use "+allow, http.StatusMethodNotAllowed)
	}
}

// cors sets the CORS headers of WHIP/WHEP responses: browsers publish and
// play from pages on other origins.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	origin := r.Header.Get("Origin")
	allow := ""
	for _, o := range s.cfg.HTTP.AllowedOrigins {
		if o == "*" {
			allow = "*"
			break
		}
		if strings.EqualFold(o, origin) {
			allow = origin
		}
	}
	if allow == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", allow)
	if allow != "*" {
		h.Add("Vary", "Origin")
	}
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	// Retry-After (429, 503) is not readable by a page of another origin
	// unless exposed: a player must know how long to wait.
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post, Retry-After")
	h.Set("Access-Control-Max-Age", "600")
}

// iceServerLinks are the Link headers announcing the configured STUN/TURN
// servers (RFC 9725 section 4.4).
func (s *Server) iceServerLinks(w http.ResponseWriter) {
	for _, u := range s.cfg.ICEServers {
		w.Header().Add("Link", fmt.Sprintf("<%s>; rel=\"ice-server\"", u))
	}
}

func (s *Server) handleWHIPOptions(w http.ResponseWriter, r *http.Request, methods string) {
	s.cors(w, r)
	w.Header().Set("Access-Control-Allow-Methods", methods)
	w.Header().Set("Allow", methods)
	if strings.HasPrefix(methods, "POST") {
		w.Header().Set("Accept-Post", mimeSDP)
		s.iceServerLinks(w)
	} else {
		w.Header().Set("Accept-Patch", mimeSDPFrag)
	}
	w.WriteHeader(http.StatusNoContent)
}

// fail answers a request that failed in the layers below with its wire
// error, and logs the detail the client does not see.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := toWire(err)
	logWire(s.log, r.Method+" "+r.URL.Path+" failed", err, e, "remote", s.clientIP(r))
	s.httpError(w, e)
}

// httpError writes a wire error as an HTTP status with a short text body.
func (s *Server) httpError(w http.ResponseWriter, e *Error) {
	s.metrics.errors.WithLabelValues(e.Code).Inc()
	switch e.Code {
	case CodeClusterUnavailable:
		w.Header().Set("Retry-After", "2") // retryable: Redis is expected back
	case CodeTooManyRelays:
		w.Header().Set("Retry-After", retryAfterRelay)
	case CodeNodeFull:
		w.Header().Set("Retry-After", retryAfterFull)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(httpStatus(e.Code))
	_, _ = fmt.Fprintf(w, "%s: %s\n", e.Code, e.Message)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// bodyError answers a request whose body readBody refused, with readBody's
// status (415 wrong content type, 413 too large, 400 unreadable).
func (s *Server) bodyError(w http.ResponseWriter, e *Error, status int) {
	s.metrics.errors.WithLabelValues(e.Code).Inc()
	http.Error(w, e.Code+": "+e.Message, status)
}

// readBody reads at most max bytes of a request body of content type want.
func readBody(w http.ResponseWriter, r *http.Request, want string, max int) ([]byte, *Error, int) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != want {
		return nil, newError(CodeBadRequest, "Content-Type must be "+want), http.StatusUnsupportedMediaType
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(max)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, newError(CodeMessageTooLarge, fmt.Sprintf("body is over %d bytes", max)), http.StatusRequestEntityTooLarge
		}
		return nil, newError(CodeBadRequest, "the body could not be read"), http.StatusBadRequest
	}
	return body, nil, 0
}

func (s *Server) handleWHIPPost(w http.ResponseWriter, r *http.Request, kind string) {
	s.cors(w, r)
	if s.draining.Load() {
		// A player that POSTs again after the drain ended its session
		// (a DTLS close_notify) is sent to the node the drain hands over
		// to; the token stays in its Authorization header, never in the
		// Location (docs/protocol.md).
		if base := s.rooms.DrainTarget(); base != "" {
			w.Header().Set("Location", strings.TrimRight(base, "/")+r.URL.RequestURI())
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		s.httpError(w, newError(CodeShuttingDown, "this node is draining"))
		return
	}
	if target := s.regionTarget(r); target != "" {
		// The client's region has a node of its own (region.go).
		w.Header().Set("Location", target)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	start := time.Now()
	// Everything that needs no body is checked before reading it: a client
	// without a valid token cannot make the node wait for (or buffer) one.
	// Such an answer closes the connection rather than drain the body.
	refuse := func(e *Error) {
		w.Header().Set("Connection", "close")
		s.httpError(w, e)
	}
	if !s.joinAllowed(s.clientIP(r), start) {
		refuse(newError(CodeRateLimited, "too many sessions from this address; retry in a minute"))
		return
	}
	// A WHIP/WHEP session cannot refresh its token: it keeps the grants it
	// started with until it ends (docs/protocol.md).
	spec, roomName, _, err := s.authorize(bearer(r), r.PathValue("room"), start)
	if err != nil {
		e := toWire(err)
		logWire(s.log, r.Method+" "+r.URL.Path+" refused", err, e, "remote", s.clientIP(r))
		refuse(e)
		return
	}
	if kind == "whip" && !spec.Publish {
		refuse(newError(CodeForbidden, "the token does not grant publish"))
		return
	}
	if kind == "whep" && !spec.Subscribe {
		refuse(newError(CodeForbidden, "the token does not grant subscribe"))
		return
	}
	pending, ok := s.admitWHEP(w, r, kind, roomName)
	if !ok {
		return
	}
	created := false
	defer func() {
		if !created {
			pending.release()
		}
	}()
	body, e, status := readBody(w, r, mimeSDP, s.cfg.Limits.MaxSDPBytes)
	if e != nil {
		w.Header().Set("Connection", "close")
		s.bodyError(w, e, status)
		return
	}
	spec.LeaveOnFailure = true
	layer := -1
	if kind == "whip" {
		spec.Subscribe = false
	} else {
		spec.Publish = false
		if q := r.URL.Query().Get("layer"); q != "" {
			cap, ok := room.ParseLayer(q)
			if !ok {
				refuse(newError(CodeBadRequest, `layer must be "low", "medium" or "high"`))
				return
			}
			layer = cap
		}
	}
	sid := id.New("s_")
	p, err := s.rooms.Join(roomName, spec, sessionSink{s: s, id: sid, pending: pending})
	if errors.Is(err, room.ErrNodeFull) {
		s.refuseFull(w, r) // admission.go
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	var answer string
	if kind == "whip" {
		answer, err = p.Publish(ctx, string(body), nil, true)
	} else {
		if layer >= 0 {
			p.SetDefaultLayer(layer)
		}
		answer, err = p.Watch(ctx, string(body), r.URL.Query().Get("track"))
	}
	if err != nil {
		p.End()
		if kind == "whep" && errors.Is(err, room.ErrNoTracks) {
			// Nothing published yet: a player waiting for the broadcast
			// asks again when told, and each ask is logged at debug only.
			s.log.Debug("whep: nothing published, the player is told to retry", "room", roomName,
				"retry_after_s", retryAfterNoTracks, "remote", s.clientIP(r))
			w.Header().Set("Retry-After", retryAfterNoTracks)
			s.httpError(w, toWire(err))
			return
		}
		s.fail(w, r, err)
		return
	}
	x := &session{id: sid, kind: kind, room: roomName, p: p, etag: `"` + id.New("e_") + `"`, pending: pending}
	s.whip.add(x)
	s.metrics.joinLatency.Observe(time.Since(start).Seconds())
	s.log.Debug(kind+" session", "room", roomName, "participant", p.ID(), "identity", spec.Identity)
	h := w.Header()
	h.Set("Content-Type", mimeSDP)
	h.Set("Location", "/"+kind+"/"+roomName+"/"+sid)
	h.Set("ETag", x.etag)
	h.Set("Accept-Patch", mimeSDPFrag)
	s.iceServerLinks(w)
	created = true
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// retryAfterNoTracks is the Retry-After, in seconds, of a WHEP POST to a
// room with nothing published (404 not_found): how long a player waiting
// for the broadcast waits before it asks again.
const retryAfterNoTracks = "5"

func (s *Server) handleWHIPDelete(w http.ResponseWriter, r *http.Request, kind string) {
	s.cors(w, r)
	x := s.whip.get(kind, r.PathValue("room"), r.PathValue("id"))
	if x == nil {
		s.httpError(w, newError(CodeNotFound, "no such session"))
		return
	}
	s.whip.remove(x.id)
	x.p.Goodbye()
	x.pending.release()
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleWHIPPatch(w http.ResponseWriter, r *http.Request, kind string) {
	s.cors(w, r)
	x := s.whip.get(kind, r.PathValue("room"), r.PathValue("id"))
	if x == nil {
		s.httpError(w, newError(CodeNotFound, "no such session"))
		return
	}
	body, e, status := readBody(w, r, mimeSDPFrag, 16<<10)
	if e != nil {
		s.bodyError(w, e, status)
		return
	}
	frag, mid, err := parseSDPFrag(string(body))
	if err != nil {
		s.httpError(w, newError(CodeBadRequest, err.Error()))
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != x.etag {
		http.Error(w, "precondition failed: the session has a newer ETag", http.StatusPreconditionFailed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	out, restarted, err := x.p.PatchICE(ctx, frag, mid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !restarted {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	x.etag = `"` + id.New("e_") + `"`
	w.Header().Set("Content-Type", mimeSDPFrag)
	w.Header().Set("ETag", x.etag)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, formatSDPFrag(out, mid))
}

// parseSDPFrag parses a trickle-ice-sdpfrag (RFC 8840): ICE credentials
// (checked as RFC 8839 says: ufrag 4-256, pwd 22-256 ice-chars), candidates
// and the media section's mid. It never panics.
func parseSDPFrag(body string) (room.ICEFragment, string, error) {
	var f room.ICEFragment
	mid := "0"
	for _, raw := range strings.Split(body, "\n") {
		l := strings.TrimRight(raw, "\r")
		switch {
		case l == "":
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			f.Ufrag = strings.TrimPrefix(l, "a=ice-ufrag:")
		case strings.HasPrefix(l, "a=ice-pwd:"):
			f.Pwd = strings.TrimPrefix(l, "a=ice-pwd:")
		case strings.HasPrefix(l, "a=mid:"):
			mid = strings.TrimPrefix(l, "a=mid:")
		case strings.HasPrefix(l, "a=candidate:"):
			c := strings.TrimPrefix(l, "a=")
			if len(strings.Fields(c)) < 8 {
				return f, "", fmt.Errorf("candidate %q has too few fields", c)
			}
			f.Candidates = append(f.Candidates, c)
		case strings.HasPrefix(l, "m="), strings.HasPrefix(l, "a="):
			// m= lines, a=end-of-candidates, a=ice-options and the like.
		default:
			return f, "", fmt.Errorf("line %q is not part of an sdpfrag", truncate(l, 40))
		}
		if len(f.Candidates) > 64 {
			return f, "", errors.New("more than 64 candidates")
		}
	}
	if (f.Ufrag == "") != (f.Pwd == "") {
		return f, "", errors.New("ice-ufrag and ice-pwd come together")
	}
	if f.Ufrag != "" && room.CheckICECredentials(f.Ufrag, f.Pwd) != nil {
		return f, "", errors.New("ice-ufrag must be 4-256 and ice-pwd 22-256 characters of A-Z a-z 0-9 + / (RFC 8839)")
	}
	if len(mid) > 32 {
		return f, "", errors.New("mid is over 32 bytes")
	}
	return f, mid, nil
}

func formatSDPFrag(f room.ICEFragment, mid string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:%s\r\n", f.Ufrag, f.Pwd, mid)
	for _, c := range f.Candidates {
		fmt.Fprintf(&b, "a=%s\r\n", c)
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
