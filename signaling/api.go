package signaling

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/halobuzz/live/docs"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/auth"
	"golang.org/x/time/rate"
)

// The server API (/api/v1/, docs/api.md, described by docs/openapi.json):
// how an app backend sees and steers the rooms of the whole cluster. Every
// call carries a bearer token: the admin grant acts on any room, the
// moderate grant on the token's own room only. Every call is rate-limited
// per token and logged at info (the audit line).

// apiPrefix is the root of the server API.
const apiPrefix = "/api/v1/"

// Wire codes of the server API beyond the protocol's (errors.go).
const (
	// CodeUnprocessable: the request is well-formed JSON but a value is out
	// of range (a ban of -1 s, an empty message); HTTP 422.
	CodeUnprocessable = "unprocessable"
	// CodeConflict: the request contradicts the state (HTTP 409).
	CodeConflict = "conflict"
	// CodeMethodNotAllowed: the path is a call of the API, with another
	// method (HTTP 405, with Allow).
	CodeMethodNotAllowed = "method_not_allowed"
)

// api serves /api/v1/.
type api struct {
	s *Server
	// limit is limits.api_requests_per_second per token (the key is a hash
	// of the token: the limiter never holds a token).
	limit *keyedLimiter
	// routes are the calls, for the methods a path takes (allowed).
	routes []apiRoute
}

// apiRoute is one call: its method and its path under apiPrefix.
type apiRoute struct{ method, path string }

// scope is what a route needs of the token.
type scope int

const (
	// scopeList: list the rooms of the cluster (admin).
	scopeList scope = iota
	// scopeRoom: act on the room of the path (admin, or moderate for it).
	scopeRoom
)

// apiCall is one authorised call.
type apiCall struct {
	claims auth.Claims
	room   string // the room of the path ("" for the room list)
	ip     string
}

// routeAPI adds the server API's routes.
func (s *Server) routeAPI(mux *http.ServeMux) {
	perSecond := s.cfg.Limits.APIRequestsPerSecond
	if perSecond <= 0 {
		perSecond = 10
	}
	a := &api{s: s, limit: &keyedLimiter{limit: rate.Limit(perSecond), burst: 2 * perSecond, m: map[string]*rate.Limiter{}}}
	mux.HandleFunc("GET "+apiPrefix+"openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(docs.OpenAPI)
	})
	a.route(mux, "GET", "rooms", scopeList, a.listRooms)
	a.route(mux, "GET", "rooms/{room}", scopeRoom, a.getRoom)
	a.route(mux, "GET", "rooms/{room}/participants", scopeRoom, a.listParticipants)
	a.routeModeration(mux) // api_moderation.go
	a.routeRecording(mux)  // api_recording.go
	s.routeAdminPage(mux)  // api_page.go
	a.routes = append(a.routes, apiRoute{"GET", "openapi.json"})
	mux.HandleFunc(apiPrefix, func(w http.ResponseWriter, r *http.Request) {
		if allow := a.allowed(r); allow != "" {
			w.Header().Set("Allow", allow)
			a.writeError(w, newError(CodeMethodNotAllowed, fmt.Sprintf("%s is not a call of %s: it takes %s (see %sopenapi.json)",
				r.Method, r.URL.Path, allow, apiPrefix)))
			return
		}
		a.writeError(w, newError(CodeNotFound, "no such API call: see "+apiPrefix+"openapi.json"))
	})
}

// route adds one call: the token is checked (401), its rate (429), its
// grant for the scope (403), then h runs; the audit line follows.
func (a *api) route(mux *http.ServeMux, method, path string, sc scope, h func(w http.ResponseWriter, r *http.Request, c apiCall) error) {
	a.routes = append(a.routes, apiRoute{method, path})
	mux.HandleFunc(method+" "+apiPrefix+path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		c, err := a.authorize(r, sc)
		if err == nil {
			err = h(rec, r, c)
		}
		if err != nil {
			var we *Error
			if !errors.As(err, &we) {
				we = apiWire(err)
				logWire(a.s.log, "api: "+method+" "+r.URL.Path+" failed", err, we)
			}
			if we.Code == CodeUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="halo-api"`)
			}
			a.writeError(rec, we)
		}
		// The audit line: who, from where, what, which room, and how it
		// ended. A token's identity, never the token.
		a.s.log.Info("api call", "identity", c.claims.Identity, "remote", a.s.clientIP(r), "method", method,
			"path", r.URL.Path, "room", r.PathValue("room"), "status", rec.status, "code", rec.code,
			"duration", time.Since(start).Round(time.Microsecond))
	})
}

// allowed lists the methods of the calls whose path is r's ("" when no
// call has it): r came to the catch-all, so its method is not one of them.
func (a *api) allowed(r *http.Request) string {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), apiPrefix), "/")
	var methods []string
	for _, rt := range a.routes {
		if pathMatches(strings.Split(rt.path, "/"), segs) && !slices.Contains(methods, rt.method) {
			methods = append(methods, rt.method)
		}
	}
	return strings.Join(methods, ", ")
}

// pathMatches reports whether segs match the route's pattern: the same
// literals, and a non-empty segment for each {wildcard}.
func pathMatches(pattern, segs []string) bool {
	if len(pattern) != len(segs) {
		return false
	}
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return false
			}
		} else if p != segs[i] {
			return false
		}
	}
	return true
}

// authorize checks the request's bearer token for sc.
func (a *api) authorize(r *http.Request, sc scope) (apiCall, error) {
	c := apiCall{ip: a.s.clientIP(r), room: r.PathValue("room")}
	tok := bearer(r)
	if tok == "" {
		return c, newError(CodeUnauthorized, "a bearer token with the admin or moderate grant is required")
	}
	claims, err := a.s.signer.Verify(tok, time.Now())
	if err != nil {
		// Refused tokens share their address's budget: a caller trying
		// tokens is limited like one using a token.
		if !a.limit.allow("ip:"+c.ip, time.Now()) {
			return c, newError(CodeRateLimited, "too many calls with refused tokens from this address; retry in a second")
		}
		we := toWire(err)
		logWire(a.s.log, "api: token refused", err, we, "path", r.URL.Path)
		return c, we
	}
	c.claims = claims
	sum := sha256.Sum256([]byte(tok))
	if !a.limit.allow(hex.EncodeToString(sum[:16]), time.Now()) {
		return c, newError(CodeRateLimited, fmt.Sprintf("over %d calls per second for this token; retry in a second", int(a.limit.limit)))
	}
	switch sc {
	case scopeList:
		if !claims.CanList() {
			return c, newError(CodeForbidden, "listing the rooms needs a token with the admin grant")
		}
	case scopeRoom:
		if !auth.ValidRoomName(c.room) {
			return c, newError(CodeBadRequest, "room must be 1..64 characters of A-Z a-z 0-9 _ . -")
		}
		if !claims.CanModerate(c.room) {
			return c, newError(CodeForbidden, fmt.Sprintf("the token has neither the admin grant nor the moderate grant for room %q", c.room))
		}
	}
	return c, nil
}

// apiWire maps an error of the room layer to its API wire error.
func apiWire(err error) *Error {
	switch {
	case errors.Is(err, room.ErrRoomNotFound):
		return newError(CodeNotFound, "no node serves this room")
	case errors.Is(err, room.ErrNoParticipant):
		return newError(CodeNotFound, "nobody with this identity is in the room")
	case errors.Is(err, room.ErrUnknownTrack):
		return newError(CodeNotFound, "no node publishes this track in the room")
	case errors.Is(err, room.ErrNoChange):
		return newError(CodeConflict, "the participant has these grants already")
	case errors.Is(err, room.ErrBadAction):
		return newError(CodeUnprocessable, "the action cannot be applied")
	case errors.Is(err, room.ErrBadCursor):
		return newError(CodeBadRequest, "the cursor or limit is not valid: use next_cursor of the previous page and a limit of 1..500")
	}
	return toWire(err)
}

// apiStatus is the HTTP status of a wire code in the server API.
func apiStatus(code string) int {
	switch code {
	case CodeUnprocessable:
		return http.StatusUnprocessableEntity
	case CodeConflict:
		return http.StatusConflict
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeBanned:
		return http.StatusForbidden
	}
	return httpStatus(code)
}

// apiError is the body of every error of the server API.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers e as JSON with its status.
func (a *api) writeError(w http.ResponseWriter, e *Error) {
	a.s.metrics.errors.WithLabelValues(e.Code).Inc()
	switch e.Code {
	case CodeClusterUnavailable:
		w.Header().Set("Retry-After", "2")
	case CodeRateLimited:
		w.Header().Set("Retry-After", "1")
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.code = e.Code
	}
	writeJSON(w, apiStatus(e.Code), apiError{Error: apiErrorBody{Code: e.Code, Message: e.Message}})
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// statusWriter remembers the status and wire code of a response, for the
// audit line.
type statusWriter struct {
	http.ResponseWriter
	status int
	code   string
}

// WriteHeader records the status.
func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}
