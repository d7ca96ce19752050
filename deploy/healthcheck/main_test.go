package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The check passes on a 200 from /healthz and fails on anything else, on
// a refused connection and on a bad address.
func TestCheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	if code := check(nil, ":"+port, io.Discard); code != 0 {
		t.Errorf("healthy node via HALO_HTTP_LISTEN: exit %d", code)
	}
	if code := check([]string{srv.Listener.Addr().String()}, "", io.Discard); code != 0 {
		t.Errorf("healthy node via the argument: exit %d", code)
	}
	status = http.StatusServiceUnavailable
	if code := check(nil, ":"+port, io.Discard); code != 1 {
		t.Errorf("503: exit %d, want 1", code)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	if code := check([]string{closed}, "", io.Discard); code != 1 {
		t.Errorf("refused: exit %d, want 1", code)
	}
	if code := check(nil, "no-port", io.Discard); code != 1 {
		t.Errorf("bad HALO_HTTP_LISTEN: exit %d, want 1", code)
	}
}
