package turn

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
)

// trackedListener is a TCP or TLS listener that closes the connections it
// accepted when it is closed (pion closes only the listener, and a client
// connection's goroutine would live on). For TLS it terminates TLS with a
// bounded handshake.
type trackedListener struct {
	net.Listener
	tls *tls.Config // nil: plain TCP

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func newTrackedListener(l net.Listener, cfg *tls.Config) *trackedListener {
	return &trackedListener{Listener: l, tls: cfg, conns: map[*trackedConn]struct{}{}}
}

// Accept returns the next connection, tracked.
func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	if l.tls != nil {
		tc.tls = tls.Server(c, l.tls)
		tc.Conn = tc.tls
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

// Close closes the listener and every connection it accepted.
func (l *trackedListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[*trackedConn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
	return err
}

// trackedConn is one accepted connection.
type trackedConn struct {
	net.Conn
	l         *trackedListener
	tls       *tls.Conn
	handshake sync.Once
	hsErr     error
}

// Read completes the TLS handshake first, within handshakeTimeout.
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
	return c.Conn.Read(p)
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
