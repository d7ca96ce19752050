package signaling

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/halobuzz/live/config"
)

// floodResult is what a flooding client sees: the codes of the errors it
// was answered, in order, and how the socket was closed.
type floodResult struct {
	codes     []string
	closeCode int
	closeText string
}

// flood opens a WebSocket to ts, sends n frames of type typ holding payload
// as fast as it can, and reads until the server closes the connection
// (closeCode is CloseAbnormalClosure when it did so without a close frame
// reaching the client).
func flood(t *testing.T, ts *testServer, typ int, payload []byte, n int) floodResult {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.url, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range n {
		if conn.WriteMessage(typ, payload) != nil {
			break // the server has closed
		}
	}
	var res floodResult
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("the server kept the flooding socket open (after %v)", res.codes)
			case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure:
				res.closeCode, res.closeText = ce.Code, ce.Text
			default:
				// The server closed the socket with frames of the flood
				// still unread: the kernel resets the connection and the
				// close frame may be lost with it. The client has the
				// error message already.
				res.closeCode = websocket.CloseAbnormalClosure
			}
			return res
		}
		var env struct {
			Type string `json:"type"`
			Data struct {
				Code string `json:"code"`
			} `json:"data"`
		}
		if err := json.Unmarshal(msg, &env); err != nil || env.Type != "error" {
			t.Fatalf("unexpected message %s", msg)
		}
		res.codes = append(res.codes, env.Data.Code)
	}
}

// A client flooding binary frames is rate-limited exactly as one flooding
// text frames: a few are answered (bad_json), then rate_limited, and the
// server closes the connection (with a 1008 close frame, unless the unread
// flood made the kernel reset it first). Binary frames used to be answered
// one by one, without end.
func TestWS_BinaryFloodIsRateLimitedLikeTextFlood(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.MessagesPerSecond = 5 })
	const n = 300
	text := flood(t, ts, websocket.TextMessage, []byte(`{"type":"stats"}`), n)
	binary := flood(t, ts, websocket.BinaryMessage, []byte{0x00, 0xff, '{', '}'}, n)
	for name, r := range map[string]floodResult{"text": text, "binary": binary} {
		last := ""
		if len(r.codes) > 0 {
			last = r.codes[len(r.codes)-1]
		}
		if last != CodeRateLimited {
			t.Errorf("%s flood: errors %v, want rate_limited last", name, r.codes)
		}
		if r.closeCode != websocket.CloseAbnormalClosure && (r.closeCode != websocket.ClosePolicyViolation || r.closeText != CodeRateLimited) {
			t.Errorf("%s flood: closed %d %q, want %d %q", name, r.closeCode, r.closeText, websocket.ClosePolicyViolation, CodeRateLimited)
		}
		if len(r.codes) >= n {
			t.Errorf("%s flood: %d of %d frames answered: not limited", name, len(r.codes), n)
		}
	}
	for _, c := range binary.codes {
		if c != CodeBadJSON && c != CodeRateLimited {
			t.Fatalf("a binary frame within the rate was answered %q, want %s", c, CodeBadJSON)
		}
	}
}
