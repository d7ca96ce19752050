package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// HTTPError is a WHIP or WHEP request answered with something other than
// 201 Created: the status and the start of the body (RFC 9725 servers say
// why there).
type HTTPError struct {
	Status int
	Body   string
}

// Error returns "HTTP <status>: <body>".
func (e *HTTPError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}

// whipClient is the HTTP client of WHIP and WHEP sessions. Requests carry
// their own context; the timeout is a backstop for a server that accepts
// the connection and never answers.
// Keep-alives are off: a load test makes two requests per session, and
// idle pooled connections would outlive the run's goroutines.
var whipClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// maxSDPBytes bounds an answer read from a WHIP/WHEP server.
const maxSDPBytes = 1 << 20

// whipExchange runs the offer/answer of RFC 9725 on pc (WHIP and WHEP are
// the same exchange): it creates the offer, waits for ICE gathering to
// complete (no trickle needed), POSTs it with the bearer token, and applies
// the answer. It returns the session's resource URL, for DELETE.
func whipExchange(ctx context.Context, pc *webrtc.PeerConnection, endpoint, token string) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("loadtest: create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("loadtest: set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("loadtest: gathering candidates: %w", ctx.Err())
	}
	answer, resource, err := whipPost(ctx, endpoint, token, pc.LocalDescription().SDP)
	if err != nil {
		return "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return "", fmt.Errorf("loadtest: set remote answer: %w", err)
	}
	return resource, nil
}

// whipDelete ends a WHIP/WHEP session; errors are ignored (the server
// releases a session whose peer connection closed anyway).
func whipDelete(resource, token string) {
	if resource == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, resource, nil)
	if err != nil {
		return
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if resp, err := whipClient.Do(req); err == nil {
		_ = resp.Body.Close()
	}
}

// withQuery returns raw with key=value added to its query (value empty:
// raw unchanged).
func withQuery(raw, key, value string) string {
	if value == "" {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// RoomURL returns endpoint with every "{room}" replaced by the escaped room
// name: a WHIP/WHEP URL template such as http://host/whep/{room}. An
// endpoint without the placeholder is returned as is (a server with one
// fixed endpoint).
func RoomURL(endpoint, room string) string {
	return strings.ReplaceAll(endpoint, "{room}", url.PathEscape(room))
}

// whipPost POSTs an offer to a WHIP or WHEP endpoint with the bearer token
// (none when empty) and returns the answer and the session's resource URL
// (the Location header resolved against endpoint; "" when the server gives
// none: the session then ends when the peer connection does).
func whipPost(ctx context.Context, endpoint, token, offer string) (answer, resource string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		return "", "", fmt.Errorf("loadtest: %s: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := whipClient.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("loadtest: POST %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSDPBytes))
	if err != nil {
		return "", "", fmt.Errorf("loadtest: POST %s: read answer: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusCreated {
		msg := string(bytes.TrimSpace(body))
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return "", "", fmt.Errorf("loadtest: POST %s: %w", endpoint, &HTTPError{Status: resp.StatusCode, Body: msg})
	}
	resource = ""
	if loc := resp.Header.Get("Location"); loc != "" {
		base, _ := url.Parse(endpoint)
		if ref, err := url.Parse(loc); err == nil && base != nil {
			resource = base.ResolveReference(ref).String()
		}
		// A Location that is the endpoint itself names no session of its
		// own (some servers answer so): a DELETE there would be another
		// request to the endpoint, not the end of this session.
		if e, _ := url.Parse(endpoint); e != nil {
			e.RawQuery = ""
			if resource == e.String() {
				resource = ""
			}
		}
	}
	return string(body), resource, nil
}
