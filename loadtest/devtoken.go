package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DevTokenMinter returns a RunConfig.TokenFunc that asks a server in dev
// mode (halo-sfu --dev, make run) for a token per participant at its
// /dev/token: each viewer its own identity and subscribe only, publishers
// publish too. signalURL is the WebSocket URL (ws://host:port/ws); the
// first token is fetched now, so a server without /dev/token is an error
// at once, not one per viewer.
func DevTokenMinter(ctx context.Context, signalURL string) (func(identity, room string, publish bool) (string, error), error) {
	u, err := url.Parse(signalURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("loadtest: dev token: bad URL %q", signalURL)
	}
	switch u.Scheme {
	case "ws", "http":
		u.Scheme = "http"
	case "wss", "https":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("loadtest: dev token: URL %q is not ws:// or wss://", signalURL)
	}
	base := u.Scheme + "://" + u.Host
	mint := func(identity, room string, publish bool) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return devToken(ctx, base, identity, room, publish)
	}
	if _, err := devToken(ctx, base, "loadtest-probe", "loadtest-probe", false); err != nil {
		return nil, err
	}
	return mint, nil
}

// devToken GETs one token from base/dev/token.
func devToken(ctx context.Context, base, identity, room string, publish bool) (string, error) {
	q := url.Values{"room": {room}, "identity": {identity}}
	if publish {
		q.Set("publish", "1")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/dev/token?"+q.Encode(), nil)
	if err != nil {
		return "", fmt.Errorf("loadtest: dev token: %w", err)
	}
	resp, err := whipClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("loadtest: dev token: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("loadtest: dev token: GET %s/dev/token: %w", base, &HTTPError{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))})
	}
	var t struct{ Token string }
	if err := json.Unmarshal(body, &t); err != nil || t.Token == "" {
		return "", fmt.Errorf("loadtest: dev token: GET %s/dev/token: no token in the answer", base)
	}
	return t.Token, nil
}
