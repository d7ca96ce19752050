package signaling

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// internalErrors reads halo_signaling_errors_total{code="internal"}.
func internalErrors(t *testing.T, m *Metrics) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.errors.WithLabelValues(CodeInternal).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

// A handler that panics answers 500 internal, is logged at error with its
// stack and counted, and the server goes on serving.
func TestRecoverPanics_AnswersInternalLogsAndCounts(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{log: slog.New(slog.NewJSONHandler(&logs, nil)), metrics: NewMetrics(nil)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("index out of range") })
	mux.HandleFunc("GET /abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "fine") })
	srv := httptest.NewServer(s.recoverPanics(mux))
	defer srv.Close()
	before := internalErrors(t, s.metrics)

	resp, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatalf("a panicking handler left the client without an answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.HasPrefix(string(body), CodeInternal+":") {
		t.Fatalf("answer %d %q, want 500 with code %s", resp.StatusCode, body, CodeInternal)
	}
	line := logs.String()
	for _, want := range []string{`"level":"ERROR"`, `"msg":"request handler panicked"`, `"path":"/boom"`, `"panic":"index out of range"`, "recover_test.go"} {
		if !strings.Contains(line, want) {
			t.Errorf("log %s lacks %s", line, want)
		}
	}
	if got := internalErrors(t, s.metrics) - before; got != 1 {
		t.Errorf("halo_signaling_errors_total{code=internal} grew by %v, want 1", got)
	}

	// net/http's deliberate abort is not a bug: no answer, no log, no count.
	logs.Reset()
	if resp, err := http.Get(srv.URL + "/abort"); err == nil {
		resp.Body.Close()
		t.Errorf("an aborted handler answered %d", resp.StatusCode)
	}
	if logs.Len() != 0 {
		t.Errorf("an aborted handler was logged: %s", logs.String())
	}

	resp, err = http.Get(srv.URL + "/ok")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the server stopped serving after a panic: %v", err)
	}
	resp.Body.Close()
}
