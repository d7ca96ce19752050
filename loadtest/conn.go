package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ProtocolVersion is the version of the signalling protocol this client speaks.
const ProtocolVersion = 1

const (
	// writeTimeout bounds one frame write; a server that stops reading for that
	// long is treated as gone.
	writeTimeout = 10 * time.Second
	// maxFrameBytes bounds a frame read from the server (SDP offers with many
	// m-lines are the largest).
	maxFrameBytes = 4 << 20
	// maxQueuedEvents bounds the events kept for Next. When nobody reads them
	// the oldest are dropped, so a client that never calls Next (a load-test
	// viewer) does not grow without bound.
	maxQueuedEvents = 4096
)

// ErrConnClosed is returned (wrapped) by Conn methods once the connection is
// closed, by either side.
var ErrConnClosed = errors.New("loadtest: signalling connection closed")

// Envelope is one message of the signalling protocol, in either direction.
type Envelope struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	ID   int64           `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Decode unmarshals the envelope's data into dst.
func (e Envelope) Decode(dst any) error {
	if len(e.Data) == 0 {
		return fmt.Errorf("loadtest: %q message has no data", e.Type)
	}
	if err := json.Unmarshal(e.Data, dst); err != nil {
		return fmt.Errorf("loadtest: decode %q data: %w", e.Type, err)
	}
	return nil
}

// ProtocolError is an `error` message of the protocol: a stable code and a
// human-readable message.
type ProtocolError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns "code: message".
func (e *ProtocolError) Error() string { return e.Code + ": " + e.Message }

// ErrorCode returns the protocol error code inside err, or "" when err does
// not wrap a *ProtocolError.
func ErrorCode(err error) string {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Conn is a signalling connection: one WebSocket carrying JSON envelopes per
// docs/protocol.md. One goroutine, owned by the Conn and stopped by Close,
// reads every frame: a reply whose id matches a pending Request goes to that
// Request, everything else is queued for Next. Methods are safe for
// concurrent use.
type Conn struct {
	ws     *websocket.Conn
	nextID atomic.Int64

	writeMu sync.Mutex // serialises frame writes (gorilla allows one writer)

	mu      sync.Mutex
	pending map[int64]chan Envelope
	events  []Envelope
	dropped uint64
	notify  chan struct{} // closed and replaced when events grow or the conn closes
	err     error         // why the read loop ended; nil while it runs

	// onEvent, when set, sees every message that is not a reply to a pending
	// Request, in order, on the read goroutine, before it is queued.
	onEvent func(Envelope)

	// tokenSource, when set, answers token_expiring with a refresh
	// (SetTokenSource); refreshing tracks those in flight.
	tokenSource func() (string, error)
	refreshing  sync.WaitGroup

	closeOnce sync.Once
	done      chan struct{} // closed when the read loop has returned
}

// SetTokenSource makes the connection answer every token_expiring event
// with a refresh carrying a token from f, so the session outlives its first
// token. f runs on a goroutine of the Conn (Close waits for it) and should
// return promptly; the refreshed reply (or an error) is delivered by Next.
func (c *Conn) SetTokenSource(f func() (string, error)) {
	c.mu.Lock()
	c.tokenSource = f
	c.mu.Unlock()
}

// refreshToken sends a refresh with a token from the token source, if any.
func (c *Conn) refreshToken() {
	c.mu.Lock()
	f := c.tokenSource
	c.mu.Unlock()
	if f == nil {
		return
	}
	c.refreshing.Add(1)
	go func() {
		defer c.refreshing.Done()
		tok, err := f()
		if err != nil {
			return // the session ends at exp with token_expired, which the owner sees
		}
		_, _ = c.Send(TypeRefresh, RefreshRequest{Token: tok})
	}()
}

// Dial opens a signalling connection to wsURL (for example
// ws://127.0.0.1:7880/ws). ctx bounds the handshake only.
func Dial(ctx context.Context, wsURL string) (*Conn, error) {
	return dial(ctx, wsURL, nil)
}

func dial(ctx context.Context, wsURL string, onEvent func(Envelope)) (*Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 15 * time.Second}
	ws, resp, err := d.DialContext(ctx, wsURL, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("loadtest: dial %s: %w (HTTP %s)", wsURL, err, resp.Status)
		}
		return nil, fmt.Errorf("loadtest: dial %s: %w", wsURL, err)
	}
	ws.SetReadLimit(maxFrameBytes)
	c := &Conn{
		ws:      ws,
		pending: make(map[int64]chan Envelope),
		notify:  make(chan struct{}),
		onEvent: onEvent,
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

// Send sends an envelope {"v":1,"type":typ,"id":id,"data":data} with a fresh
// request id and returns that id. data may be nil (no data field) or anything
// encoding/json marshals. Send does not wait for a reply; a reply that
// arrives is delivered by Next.
func (c *Conn) Send(typ string, data any) (int64, error) {
	id := c.nextID.Add(1)
	if err := c.send(typ, id, data); err != nil {
		return 0, err
	}
	return id, nil
}

func (c *Conn) send(typ string, id int64, data any) error {
	env := Envelope{V: ProtocolVersion, Type: typ, ID: id}
	if data != nil {
		raw, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("loadtest: encode %q: %w", typ, err)
		}
		env.Data = raw
	}
	frame, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("loadtest: encode %q: %w", typ, err)
	}
	return c.SendRaw(frame)
}

// SendRaw sends frame as one text frame, unchanged. It exists for tests that
// feed the server bad input.
func (c *Conn) SendRaw(frame []byte) error {
	select {
	case <-c.done:
		return c.closedErr()
	default:
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		// A failed write breaks a WebSocket: the connection is over.
		return fmt.Errorf("loadtest: write: %w: %w", ErrConnClosed, err)
	}
	return nil
}

// Request sends a message and waits for the reply carrying the same id. A
// reply of type "error" is returned as a *ProtocolError. ctx bounds the wait;
// when it ends first the reply, if it comes later, is dropped.
func (c *Conn) Request(ctx context.Context, typ string, data any) (Envelope, error) {
	id := c.nextID.Add(1)
	ch := make(chan Envelope, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return Envelope{}, err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()

	if err := c.send(typ, id, data); err != nil {
		return Envelope{}, err
	}
	select {
	case env := <-ch:
		if env.Type == "error" {
			return env, replyError(env)
		}
		return env, nil
	case <-ctx.Done():
		return Envelope{}, fmt.Errorf("loadtest: waiting for reply to %q: %w", typ, ctx.Err())
	case <-c.done:
		// The reply may have raced with the close: prefer it.
		select {
		case env := <-ch:
			if env.Type == "error" {
				return env, replyError(env)
			}
			return env, nil
		default:
		}
		return Envelope{}, fmt.Errorf("loadtest: waiting for reply to %q: %w", typ, c.closedErr())
	}
}

// replyError turns an "error" envelope into a *ProtocolError.
func replyError(env Envelope) error {
	pe := &ProtocolError{}
	if err := json.Unmarshal(env.Data, pe); err != nil || pe.Code == "" {
		return &ProtocolError{Code: "malformed_error", Message: string(env.Data)}
	}
	return pe
}

// Next returns the next message that is not a reply to a pending Request:
// server events, and replies nobody waits for (to Send, or to a Request whose
// context ended). Messages queued before the connection closed are still
// returned; after them Next returns an error wrapping ErrConnClosed.
func (c *Conn) Next(ctx context.Context) (Envelope, error) {
	for {
		c.mu.Lock()
		if len(c.events) > 0 {
			env := c.events[0]
			c.events[0] = Envelope{}
			c.events = c.events[1:]
			c.mu.Unlock()
			return env, nil
		}
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return Envelope{}, err
		}
		wait := c.notify
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return Envelope{}, ctx.Err()
		}
	}
}

// Dropped reports how many events were discarded because more than 4096
// were waiting for Next.
func (c *Conn) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Done is closed when the connection has ended (closed by Close, by the
// server, or by a network error).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close sends a close frame, closes the socket and waits for the read
// goroutine to end. It is safe to call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		_ = c.ws.Close()
	})
	<-c.done
	c.refreshing.Wait()
	return nil
}

func (c *Conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return ErrConnClosed
}

func (c *Conn) readLoop() {
	var cause error
	for {
		typ, frame, err := c.ws.ReadMessage()
		if err != nil {
			cause = err
			break
		}
		if typ != websocket.TextMessage {
			continue
		}
		var env Envelope
		if err := json.Unmarshal(frame, &env); err != nil {
			// Not an envelope: hand it to Next with an empty type rather
			// than lose it silently.
			env = Envelope{}
			if json.Valid(frame) {
				env.Data = frame
			}
		}
		c.dispatch(env)
	}
	_ = c.ws.Close()
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %w", ErrConnClosed, cause)
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
	close(c.done)
}

func (c *Conn) dispatch(env Envelope) {
	if env.ID != 0 {
		c.mu.Lock()
		ch, ok := c.pending[env.ID]
		if ok {
			delete(c.pending, env.ID)
		}
		c.mu.Unlock()
		if ok {
			ch <- env // buffered 1, and the id is removed: never blocks
			return
		}
	}
	if env.Type == TypeTokenExpiring {
		c.refreshToken()
	}
	if c.onEvent != nil {
		c.onEvent(env)
	}
	c.mu.Lock()
	if len(c.events) >= maxQueuedEvents {
		c.events[0] = Envelope{}
		c.events = c.events[1:]
		c.dropped++
	}
	c.events = append(c.events, env)
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
}
