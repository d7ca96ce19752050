package turn

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// trackedListener is a TCP or TLS listener that closes the connections it
// accepted when it is closed (pion closes only the listener, and a client
// connection's goroutine would live on). It bounds what a client can hold:
// connections per IP (each carries at most one allocation, so the cap on
// allocations per IP is theirs too), a TLS handshake, and a silent
// connection, which is closed after the idle time (a live TURN client
// sends a refresh, a permission or ICE consent checks far more often).
type trackedListener struct {
	net.Listener
	tls   *tls.Config // nil: plain TCP
	perIP int         // 0: no cap
	idle  time.Duration
	m     *metrics

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	ips    map[netip.Addr]int
	closed bool
}

func newTrackedListener(l net.Listener, cfg *tls.Config, perIP int, idle time.Duration, m *metrics) *trackedListener {
	return &trackedListener{Listener: l, tls: cfg, perIP: perIP, idle: idle, m: m,
		conns: map[*trackedConn]struct{}{}, ips: map[netip.Addr]int{}}
}

// Accept returns the next connection, tracked. A connection beyond its
// IP's cap is closed at once and not returned (an error would end pion's
// accept loop).
func (l *trackedListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// Out of file descriptors is passing: wait and accept again, as
			// net/http does. Any error returned ends pion's accept loop for
			// good.
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				l.m.refused(ReasonAcceptFailed)
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			return nil, err
		}
		backoff = 5 * time.Millisecond
		ip := ipOf(c.RemoteAddr())
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = c.Close()
			return nil, net.ErrClosed
		}
		if l.perIP > 0 && l.ips[ip] >= l.perIP {
			l.mu.Unlock()
			_ = c.Close()
			l.m.refused(ReasonQuotaIP)
			continue
		}
		tc := &trackedConn{Conn: c, l: l, ip: ip}
		if l.tls != nil {
			tc.tls = tls.Server(c, l.tls)
			tc.Conn = tc.tls
		}
		l.conns[tc] = struct{}{}
		l.ips[ip]++
		l.mu.Unlock()
		return tc, nil
	}
}

// Close closes the listener and every connection it accepted.
func (l *trackedListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[*trackedConn]struct{}{}
	l.ips = map[netip.Addr]int{}
	l.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
	return err
}

// forget removes c, once.
func (l *trackedListener) forget(c *trackedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; !ok {
		return
	}
	delete(l.conns, c)
	if l.ips[c.ip]--; l.ips[c.ip] <= 0 {
		delete(l.ips, c.ip)
	}
}

// trackedConn is one accepted connection.
type trackedConn struct {
	net.Conn
	l         *trackedListener
	ip        netip.Addr
	tls       *tls.Conn
	handshake sync.Once
	hsErr     error
}

// Read completes the TLS handshake first, within handshakeTimeout, and
// gives up on a client silent for the listener's idle time.
func (c *trackedConn) Read(p []byte) (int, error) {
	if c.tls != nil {
		c.handshake.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
			defer cancel()
			c.hsErr = c.tls.HandshakeContext(ctx)
		})
		if c.hsErr != nil {
			return 0, c.hsErr
		}
	}
	if c.l.idle > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.l.idle))
	}
	return c.Conn.Read(p)
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	c.l.forget(c)
	return c.Conn.Close()
}
