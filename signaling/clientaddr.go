package signaling

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientAddrs tells who a request comes from: its TCP peer, or, when the
// peer is one of http.trusted_proxies, the rightmost X-Forwarded-For hop that
// is not itself a trusted proxy. X-Forwarded-For from anyone else is ignored:
// a client can write anything there.
type clientAddrs struct {
	trusted []netip.Prefix
}

// newClientAddrs parses http.trusted_proxies (validated by config): CIDR
// blocks or single addresses.
func newClientAddrs(list []string) clientAddrs {
	var c clientAddrs
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			c.trusted = append(c.trusted, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			c.trusted = append(c.trusted, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return c
}

func (c clientAddrs) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// of returns the client address of r; the zero Addr when even the peer's
// address does not parse.
func (c clientAddrs) of(r *http.Request) netip.Addr {
	peer := parseHop(r.RemoteAddr)
	if !peer.IsValid() || !c.isTrusted(peer) {
		return peer
	}
	client := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a := parseHop(parts[j])
			if !a.IsValid() {
				return client // a garbled hop: trust nothing left of it
			}
			client = a
			if !c.isTrusted(a) {
				return a
			}
		}
	}
	return client // every hop is a trusted proxy: the leftmost is the client
}

// parseHop parses an address as RemoteAddr or X-Forwarded-For write it:
// "1.2.3.4", "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]:5678".
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// limitKey is what per-IP limits count by: an IPv4 address, or the /64 of an
// IPv6 address (one subscriber's network: a client picks any address in
// it). An unparsable address counts as itself.
func limitKey(a netip.Addr, raw string) string {
	if !a.IsValid() {
		return raw
	}
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// clientIP is the client address of r for logs and limits.
func (s *Server) clientIP(r *http.Request) string {
	if a := s.addrs.of(r); a.IsValid() {
		return a.String()
	}
	return r.RemoteAddr
}
