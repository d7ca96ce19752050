package sfu

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
)

// No silent end of a handed-over session. When the server ends a session
// whose connection was handed over from Pion (handoff.go), the viewer is
// told what Pion's Close would have told it: an RTCP BYE for the streams
// it receives (SRTCP, with the connection's keys), then a DTLS
// close_notify. Its PeerConnection closes at once, instead of finding out
// from ICE consent 5 to 30 s later.
//
// The close_notify needs the DTLS record layer's state: cipher suite,
// keys, epoch and the next sequence number of epoch 1. dtls v3 exports a
// path for it: Conn.ConnectionState snapshots a connection's state, and
// dtls.Resume builds a connection from one without a handshake, whose
// Close sends the alert. The snapshot is taken once Pion's connection is
// closed (its ICE transport stopped first, so nothing it sends gets out,
// and the socket drops its teardown anyway: socket.go): its sequence
// number is then past every record Pion ever encrypted, even its own
// dropped close_notify, so no record number (the AEAD nonce) is used
// twice. The resumed connection lives only for the close: it writes to
// the viewer's pair on the engine's socket and reads nothing.

// closeNotifyWait bounds how long the end of a session waits for the
// snapshot of a connection handed over a moment before (Pion's close
// still under way).
const closeNotifyWait = 2 * time.Second

// keepDTLS takes the connection's DTLS state once Pion's connection is
// closed (on the hand-over's closing goroutine). conn is Pion's, or nil
// when it could not be reached.
func (h *handedOff) keepDTLS(conn *dtls.Conn) {
	defer close(h.pionClosed)
	if conn == nil {
		return
	}
	st, ok := conn.ConnectionState()
	if !ok {
		return
	}
	h.dtls.Store(&st)
}

// sayGoodbye tells the viewer the session is over: an RTCP BYE for every
// stream it receives, then a DTLS close_notify. At most once.
func (h *handedOff) sayGoodbye() {
	h.goodbye.Do(func() {
		s := h.s
		s.ssrcMu.RLock()
		bye := &rtcp.Goodbye{Sources: make([]uint32, 0, len(s.ssrcs))}
		for ssrc := range s.ssrcs {
			bye.Sources = append(bye.Sources, ssrc)
		}
		s.ssrcMu.RUnlock()
		if len(bye.Sources) > 0 {
			if err := h.writeRTCP([]rtcp.Packet{bye}); err != nil {
				s.e.log.Debug("RTCP BYE to a handed-over viewer", "err", err)
			}
		}
		t := time.NewTimer(closeNotifyWait)
		defer t.Stop()
		select {
		case <-h.pionClosed:
		case <-t.C:
		}
		st := h.dtls.Swap(nil)
		p := s.link.path.Load()
		if st == nil || p == nil {
			s.e.log.Debug("no DTLS state to close a handed-over viewer's connection with")
			return
		}
		if err := sendCloseNotify(st, p.sock, p.ap, s.e.lf); err != nil {
			s.e.log.Debug("DTLS close_notify to a handed-over viewer", "err", err)
		}
	})
}

// sendCloseNotify sends a DTLS close_notify alert of the connection whose
// state is st to the peer at to, through sock.
func sendCloseNotify(st *dtls.State, sock *mediaSocket, to netip.AddrPort, lf logging.LoggerFactory) error {
	pc := newAlertConn(sock, to)
	c, err := dtls.Resume(st, pc, net.UDPAddrFromAddrPort(to), &dtls.Config{LoggerFactory: lf})
	if err != nil {
		_ = pc.Close()
		return fmt.Errorf("resume the DTLS state: %w", err)
	}
	// The resumed state needs no handshake: this only marks it done, so
	// that Close sends the alert.
	if err := c.Handshake(); err != nil {
		_ = c.Close()
		return fmt.Errorf("resume the DTLS state: %w", err)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("close_notify: %w", err)
	}
	if !pc.wrote() {
		return errors.New("close_notify: nothing was written")
	}
	return nil
}

// alertConn is the net.PacketConn a resumed DTLS connection closes over:
// its writes go to one peer through an engine socket, and it reads
// nothing (its reads wait until it is closed or their deadline passes).
type alertConn struct {
	sock *mediaSocket
	to   netip.AddrPort

	mu       sync.Mutex
	wake     chan struct{} // closed by Close or a read deadline in the past
	closed   bool
	expired  bool
	nWritten int
}

func newAlertConn(sock *mediaSocket, to netip.AddrPort) *alertConn {
	return &alertConn{sock: sock, to: sockAddr(sock, to), wake: make(chan struct{})}
}

// ReadFrom waits until the connection is closed or its read deadline has
// passed.
func (c *alertConn) ReadFrom([]byte) (int, net.Addr, error) {
	c.mu.Lock()
	w := c.wake
	c.mu.Unlock()
	<-w
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, nil, net.ErrClosed
	}
	return 0, nil, os.ErrDeadlineExceeded
}

// WriteTo sends b to the peer (whatever addr says: the peer is fixed).
func (c *alertConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	n, err := c.sock.conn.WriteToUDPAddrPort(b, c.to)
	if err == nil {
		c.mu.Lock()
		c.nWritten++
		c.mu.Unlock()
	}
	return n, err
}

func (c *alertConn) wrote() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nWritten > 0
}

// Close ends the connection: a waiting read returns.
func (c *alertConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		if !c.expired {
			close(c.wake)
		}
	}
	return nil
}

// LocalAddr is the engine socket's address.
func (c *alertConn) LocalAddr() net.Addr { return c.sock.conn.LocalAddr() }

// SetDeadline sets the read deadline (writes do not wait).
func (c *alertConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline wakes a waiting read when t has passed (a context's
// cancellation sets one in the past); the zero time clears it.
func (c *alertConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	switch {
	case t.IsZero():
		if c.expired {
			c.expired = false
			c.wake = make(chan struct{})
		}
	case !t.After(time.Now()):
		if !c.expired {
			c.expired = true
			close(c.wake)
		}
	}
	return nil
}

// SetWriteDeadline does nothing: a write to a UDP socket does not wait.
func (c *alertConn) SetWriteDeadline(time.Time) error { return nil }
