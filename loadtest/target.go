package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Target is where a run sends its clients: our WebSocket protocol (URL), or
// plain WHIP and WHEP endpoints, which any WHIP/WHEP server has. "{room}"
// in WHIP and WHEP is replaced by the room name.
type Target struct {
	// URL is the signalling WebSocket, e.g. ws://127.0.0.1:7880/ws.
	URL string
	// WHIP and WHEP are endpoint templates, e.g.
	// http://127.0.0.1:7880/whip/{room}. Both or neither.
	WHIP, WHEP string
}

// Kind is "websocket" or "whip-whep".
func (t Target) Kind() string {
	if t.WHEP != "" || t.WHIP != "" {
		return "whip-whep"
	}
	return "websocket"
}

func (t Target) validate() error {
	switch {
	case t.URL != "" && (t.WHIP != "" || t.WHEP != ""):
		return errors.New("loadtest: target: give a WebSocket URL or WHIP/WHEP endpoints, not both")
	case (t.WHIP == "") != (t.WHEP == ""):
		return errors.New("loadtest: target: WHIP and WHEP endpoints go together")
	case t.URL == "" && t.WHIP == "":
		return errors.New("loadtest: target: no URL")
	}
	return nil
}

// FailureCode names why a participant failed, for Report.FailedJoins: the
// server's protocol error code, http_<status> for WHIP/WHEP, or
// connection_refused, timeout, no_media, error.
func FailureCode(err error) string {
	var he *HTTPError
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case ErrorCode(err) != "":
		return ErrorCode(err)
	case errors.As(err, &he):
		return fmt.Sprintf("http_%d", he.Status)
	case errors.Is(err, errNoMedia):
		return "no_media"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return "error"
}
