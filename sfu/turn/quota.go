package turn

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// pendingTTL is how long a reservation made when an Allocate passed the
// quota waits for its allocation; one whose allocation failed lapses then.
const pendingTTL = 10 * time.Second

// quota counts live allocations per identity and per client IP. An
// Allocate reserves its place when it passes the check (pion's
// QuotaHandler), so concurrent Allocates over TCP cannot overshoot; the
// allocation's creation confirms the place, its deletion gives it back.
type quota struct {
	perIdentity, perIP int // 0: no cap

	mu      sync.Mutex
	ids     map[string]int
	ips     map[netip.Addr]int
	pending map[string]holder // by client transport address
	live    map[string]holder
}

// holder is who holds one place.
type holder struct {
	identity  string
	ip        netip.Addr
	at        time.Time
	transport string // udp, tcp or tls, once created
}

func newQuota(perIdentity, perIP int) *quota {
	return &quota{perIdentity: perIdentity, perIP: perIP, ids: map[string]int{}, ips: map[netip.Addr]int{},
		pending: map[string]holder{}, live: map[string]holder{}}
}

// key names a client's transport address (UDP and TCP apart).
func key(a net.Addr) string { return a.Network() + "/" + a.String() }

// ipOf is a's IP, IPv6 counted per /64 (one subscriber's network).
func ipOf(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch v := a.(type) {
	case *net.UDPAddr:
		ip = v.AddrPort().Addr()
	case *net.TCPAddr:
		ip = v.AddrPort().Addr()
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			ip = ap.Addr()
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip
}

// reserve takes a place for an Allocate of identity from src, or returns
// the reason it is refused.
func (q *quota) reserve(identity string, src net.Addr, now time.Time) (reason string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, h := range q.pending {
		if now.Sub(h.at) > pendingTTL {
			q.release(h)
			delete(q.pending, k)
		}
	}
	k := key(src)
	if h, ok := q.pending[k]; ok { // a retried Allocate
		q.release(h)
		delete(q.pending, k)
	}
	ip := ipOf(src)
	if q.perIdentity > 0 && q.ids[identity] >= q.perIdentity {
		return ReasonQuotaIdentity
	}
	if q.perIP > 0 && q.ips[ip] >= q.perIP {
		return ReasonQuotaIP
	}
	h := holder{identity: identity, ip: ip, at: now}
	q.ids[identity]++
	q.ips[ip]++
	q.pending[k] = h
	return ""
}

// created confirms the reservation of src's allocation, reached over
// transport.
func (q *quota) created(src net.Addr, transport string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := key(src)
	if h, ok := q.pending[k]; ok {
		delete(q.pending, k)
		h.transport = transport
		q.live[k] = h
	}
}

// countOver is the number of live allocations reached over transport.
func (q *quota) countOver(transport string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, h := range q.live {
		if h.transport == transport {
			n++
		}
	}
	return n
}

// deleted gives back the place of src's allocation.
func (q *quota) deleted(src net.Addr) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := key(src)
	if h, ok := q.live[k]; ok {
		delete(q.live, k)
		q.release(h)
	}
}

// count is the number of live allocations.
func (q *quota) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.live)
}

func (q *quota) release(h holder) {
	if q.ids[h.identity]--; q.ids[h.identity] <= 0 {
		delete(q.ids, h.identity)
	}
	if q.ips[h.ip]--; q.ips[h.ip] <= 0 {
		delete(q.ips, h.ip)
	}
}
