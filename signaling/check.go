package signaling

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The connection check page (/check): from the user's own browser it tries
// the ways a viewer can reach this node (UDP, ICE-TCP, TURN over UDP, TCP
// and TLS)
// and says which work, with a round-trip time and a short bandwidth probe,
// as JSON to copy into a support ticket. It needs no token: the TURN
// credentials it gets from /check/ice-servers reach nothing but this
// node's own relays and media port, under the TURN server's per-IP caps.

// checkCredentialTTL bounds the life of the check page's TURN credentials.
const checkCredentialTTL = 10 * time.Minute

// checkICE is the answer of GET /check/ice-servers.
type checkICE struct {
	// STUN is the node's TURN port as a STUN server ("" without the
	// embedded TURN server).
	STUN string `json:"stun"`
	// TURN are the TURN servers with credentials for this check.
	TURN []ICEServer `json:"turn"`
	// ICETCP: the node has an ICE-TCP port the page can try
	// (POST /check/ice-tcp, check_tcp.go).
	ICETCP bool `json:"ice_tcp"`
	// Node and Region name the node checked, for the support ticket.
	Node   string `json:"node"`
	Region string `json:"region"`
}

// routeCheck registers the check page and what it asks the node for.
func (s *Server) routeCheck(mux *http.ServeMux) {
	page, err := webFiles.ReadFile("web/check.html")
	if err != nil {
		panic("signaling: embedded check page: " + err.Error()) // the embed is part of the binary
	}
	mux.HandleFunc("GET /check", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", webCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(page))
	})
	mux.HandleFunc("GET /check/ice-servers", s.handleCheckICE)
	mux.HandleFunc("POST /check/ice-tcp", s.handleCheckTCP)
	mux.HandleFunc("/check", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/check/ice-servers", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/check/ice-tcp", methodNotAllowed("POST"))
}

// handleCheckICE gives the check page the node's STUN and TURN servers,
// with credentials for identity "check:<client address>". Each call counts
// against the address's joins (limits.joins_per_ip_per_minute).
func (s *Server) handleCheckICE(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	ip := s.clientIP(r)
	a, _ := netip.ParseAddr(ip)
	key := limitKey(a, ip)
	if !s.devLoopback(ip) && !s.joins.allow(key, now) {
		w.Header().Set("Retry-After", "60")
		s.httpError(w, newError(CodeRateLimited, "too many checks from this address; try again in a minute"))
		return
	}
	out := checkICE{TURN: []ICEServer{}, ICETCP: s.tcpOffered(), Node: s.cfg.Node.ID, Region: s.cfg.Node.Region}
	if s.cfg.Turn.Enabled {
		host := s.turnHost(r.Host)
		if s.cfg.Turn.Domain != "" {
			host = s.cfg.Turn.Domain
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]" // an IPv6 literal
		}
		out.STUN = "stun:" + host + ":" + strconv.Itoa(s.cfg.Turn.Port)
	}
	if urls := s.turnURLs(s.turnHost(r.Host)); len(urls) > 0 && (s.cfg.Turn.Enabled || len(s.cfg.Turn.ExternalURLs) > 0) {
		user, pass := TURNCredential(s.cfg.TURNSecret, "check:"+key, now.Add(min(s.cfg.Turn.CredentialTTL, checkCredentialTTL)))
		out.TURN = append(out.TURN, ICEServer{URLs: urls, Username: user, Credential: pass})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}
