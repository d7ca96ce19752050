package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// scriptServer is a fake signalling server for Conn tests: every text frame
// it reads is passed to handle, which replies through the send function.
type scriptServer struct {
	*httptest.Server
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // handlers of hijacked connections
}

// track counts a handler for Cleanup to wait for, unless cleanup began.
func (s *scriptServer) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func newScriptServer(t *testing.T, handle func(env Envelope, raw []byte, send func(v any))) *scriptServer {
	t.Helper()
	s := &scriptServer{}
	up := websocket.Upgrader{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.track() {
			return
		}
		defer s.wg.Done()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		var mu sync.Mutex
		send := func(v any) {
			mu.Lock()
			defer mu.Unlock()
			_ = ws.WriteJSON(v)
		}
		for {
			_, raw, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var env Envelope
			_ = json.Unmarshal(raw, &env)
			if env.Type == "close" {
				return
			}
			handle(env, raw, send)
		}
	}))
	t.Cleanup(func() {
		s.Close()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *scriptServer) wsURL() string { return "ws" + strings.TrimPrefix(s.URL, "http") + "/ws" }

func dialTest(t *testing.T, url string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConn_RequestGetsTheReplyWithItsID(t *testing.T) {
	// The server answers in reverse order, with an event in between, so a
	// reply must be matched by id and events must go to Next.
	var mu sync.Mutex
	var held []Envelope
	srv := newScriptServer(t, func(env Envelope, _ []byte, send func(any)) {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, env)
		if len(held) < 3 {
			return
		}
		send(map[string]any{"v": 1, "type": "viewer_count", "data": map[string]int{"count": 3}})
		for i := len(held) - 1; i >= 0; i-- {
			send(map[string]any{"v": 1, "type": "echo", "id": held[i].ID, "data": held[i].Data})
		}
	})
	c := dialTest(t, srv.wsURL())
	ctx := testCtx(t)

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply, err := c.Request(ctx, "ping", map[string]int{"n": i})
			if err != nil {
				errs <- err
				return
			}
			var got map[string]int
			if err := reply.Decode(&got); err != nil || got["n"] != i || reply.Type != "echo" {
				errs <- fmt.Errorf("request %d got %s %s (%v)", i, reply.Type, reply.Data, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	ev, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var vc ViewerCount
	if ev.Type != TypeViewerCount || ev.ID != 0 || ev.Decode(&vc) != nil || vc.Count != 3 {
		t.Fatalf("event %+v", ev)
	}
}

func TestConn_ErrorReplyIsAProtocolError(t *testing.T) {
	srv := newScriptServer(t, func(env Envelope, _ []byte, send func(any)) {
		send(map[string]any{"v": 1, "type": "error", "id": env.ID,
			"data": map[string]string{"code": "not_joined", "message": "join first"}})
	})
	c := dialTest(t, srv.wsURL())

	_, err := c.Request(testCtx(t), "chat", ChatMessage{Text: "hi"})
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != "not_joined" || pe.Message != "join first" {
		t.Fatalf("err = %#v", err)
	}
	if ErrorCode(err) != "not_joined" || err.Error() != "not_joined: join first" {
		t.Fatalf("ErrorCode = %q, Error = %q", ErrorCode(err), err.Error())
	}
	if ErrorCode(fmt.Errorf("wrapped: %w", err)) != "not_joined" {
		t.Fatal("ErrorCode does not see through wrapping")
	}
	if ErrorCode(errors.New("other")) != "" || ErrorCode(nil) != "" {
		t.Fatal("ErrorCode of a non-protocol error is not empty")
	}
}

func TestConn_SendWritesTheEnvelopeAndUnclaimedRepliesGoToNext(t *testing.T) {
	frames := make(chan []byte, 4)
	srv := newScriptServer(t, func(env Envelope, raw []byte, send func(any)) {
		frames <- raw
		if env.ID != 0 {
			send(map[string]any{"v": 1, "type": "error", "id": env.ID,
				"data": map[string]string{"code": "bad_json", "message": "x"}})
		}
	})
	c := dialTest(t, srv.wsURL())
	ctx := testCtx(t)

	id, err := c.Send("leave", struct{}{})
	if err != nil || id == 0 {
		t.Fatalf("Send = %d, %v", id, err)
	}
	var got map[string]any
	if err := json.Unmarshal(<-frames, &got); err != nil {
		t.Fatal(err)
	}
	if got["v"] != float64(1) || got["type"] != "leave" || got["id"] != float64(id) || fmt.Sprint(got["data"]) != "map[]" {
		t.Fatalf("envelope %v", got)
	}
	ev, err := c.Next(ctx)
	if err != nil || ev.Type != TypeError || ev.ID != id {
		t.Fatalf("Next = %+v, %v", ev, err)
	}

	if err := c.SendRaw([]byte(`{"v":2,"type":"join"`)); err != nil {
		t.Fatal(err)
	}
	if raw := <-frames; string(raw) != `{"v":2,"type":"join"` {
		t.Fatalf("raw frame changed: %s", raw)
	}
}

func TestConn_CloseEndsNextAndRequest(t *testing.T) {
	srv := newScriptServer(t, func(env Envelope, _ []byte, send func(any)) {
		if env.Type == "event" {
			send(map[string]any{"v": 1, "type": "participant_left"})
			send(map[string]any{"v": 1, "type": "ok", "id": env.ID})
		}
		// Other requests are never answered.
	})
	c := dialTest(t, srv.wsURL())
	ctx := testCtx(t)
	// The reply comes after the event, so the event is queued once it returns.
	if _, err := c.Request(ctx, "event", nil); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := c.Request(waitCtx, "silent", nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Request err = %v, want deadline", err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := c.Request(ctx, "silent", nil)
		done <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrConnClosed) {
		t.Fatalf("pending Request err = %v, want ErrConnClosed", err)
	}
	// The event queued before the close is still delivered, then the close.
	if ev, err := c.Next(ctx); err != nil || ev.Type != TypeParticipantLeft {
		t.Fatalf("Next = %+v, %v", ev, err)
	}
	if _, err := c.Next(ctx); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Next after close err = %v", err)
	}
	if _, err := c.Send("x", nil); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Send after close err = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestConn_ServerCloseIsReported(t *testing.T) {
	srv := newScriptServer(t, func(Envelope, []byte, func(any)) {})
	c := dialTest(t, srv.wsURL())
	if _, err := c.Send("close", nil); err != nil { // the script server hangs up
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-testCtx(t).Done():
		t.Fatal("server close not noticed")
	}
	if _, err := c.Next(testCtx(t)); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("Next err = %v", err)
	}
}

func TestDial_FailsOnNonWebSocketEndpoint(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := Dial(testCtx(t), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v", err)
	}
}

func TestConn_EventQueueIsBounded(t *testing.T) {
	const extra = 10
	srv := newScriptServer(t, func(env Envelope, _ []byte, send func(any)) {
		for i := range maxQueuedEvents + extra {
			send(map[string]any{"v": 1, "type": "viewer_count", "data": map[string]int{"count": i}})
		}
		send(map[string]any{"v": 1, "type": "done", "id": env.ID})
	})
	c := dialTest(t, srv.wsURL())
	ctx := testCtx(t)
	if _, err := c.Request(ctx, "flood", nil); err != nil {
		t.Fatal(err)
	}
	if c.Dropped() != extra {
		t.Fatalf("dropped %d, want %d", c.Dropped(), extra)
	}
	ev, err := c.Next(ctx)
	var vc ViewerCount
	if err != nil || ev.Decode(&vc) != nil || vc.Count != extra {
		t.Fatalf("oldest kept event %+v (%v), want count %d", ev, err, extra)
	}
}
