package signaling

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTPServer returns the server for the node's HTTP listener: the routes of
// Handler and the timeouts of http.*. http.read_timeout bounds reading a
// request, body included, so a client that starts a WHIP offer and never
// finishes it is cut off; http.idle_timeout closes keep-alive connections
// left idle. A WebSocket is exempt once upgraded (handleWS clears the
// deadlines the server set; signaling.read_timeout applies from then on).
// Serve it on Listener(ln) for the per-IP connection cap.
func (s *Server) HTTPServer() *http.Server {
	h := s.cfg.HTTP
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: h.ReadHeaderTimeout,
		ReadTimeout:       h.ReadTimeout,
		IdleTimeout:       h.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// Listener wraps ln with http.max_conns_per_ip: a client address (an IPv6
// /64) holding that many open connections has the next one answered 429 and
// closed. Trusted proxies are not counted (they carry many clients), nor
// loopback in dev mode.
func (s *Server) Listener(ln net.Listener) net.Listener {
	if s.cfg.HTTP.MaxConnsPerIP <= 0 {
		return ln
	}
	return &limitedListener{Listener: ln, s: s, open: newCounter(s.cfg.HTTP.MaxConnsPerIP)}
}

type limitedListener struct {
	net.Listener
	s    *Server
	open *counter
}

// tooManyConns is the whole answer to a connection over the cap.
var tooManyConns = func() []byte {
	body := CodeRateLimited + ": too many connections from this address\n"
	return fmt.Appendf(nil, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Connection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}()

// Accept returns the next connection within the cap; those over it are
// answered and closed here.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := parseHop(c.RemoteAddr().String())
		if l.s.addrs.isTrusted(a) || l.s.devLoopback(a.String()) {
			return c, nil
		}
		release, ok := l.open.acquire(limitKey(a, c.RemoteAddr().String()))
		if ok {
			return &countedConn{Conn: c, release: release}, nil
		}
		l.s.metrics.errors.WithLabelValues(CodeRateLimited).Inc()
		// A fresh connection's send buffer is empty: this write does not
		// wait for the client.
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write(tooManyConns)
		_ = c.Close()
	}
}

// countedConn gives its place back when closed, by the server, by the
// client's end or after a WebSocket hijack.
type countedConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
