package webhook

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The benchmarks' webhook receiver (bench_test.go) runs in a process of
// its own, so that the CPU the benchmark reports is the sender's alone. It
// is this test binary started again with benchReceiverEnv set: it listens
// on a free loopback port, prints "addr HOST:PORT", then for each POST
// checks the Standard Webhooks signature as a receiver would (its own code,
// not the package's Signer) and prints "ev LATENCY_NS OK" (the time from
// the event's time to its arrival; OK 1 when the signature is valid). It
// exits when its stdin closes.

// benchReceiverEnv marks the receiver process; its value is the
// webhooks.secret.
const benchReceiverEnv = "HALOTEST_WEBHOOK_RECEIVER"

// runBenchReceiver is the receiver process's main.
func runBenchReceiver(secret string) int {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver: secret:", err)
		return 2
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	fmt.Fprintln(out, "addr", l.Addr().String())
	_ = out.Flush()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		ok := verifyStandard(key, r.Header, body, now)
		var ev struct {
			Time time.Time `json:"time"`
		}
		_ = json.Unmarshal(body, &ev)
		w.WriteHeader(http.StatusNoContent)
		mu.Lock()
		fmt.Fprintln(out, "ev", now.Sub(ev.Time).Nanoseconds(), map[bool]int{true: 1}[ok])
		_ = out.Flush()
		mu.Unlock()
	})}
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); _ = l.Close() }()
	_ = srv.Serve(l)
	return 0
}

// verifyStandard checks a delivery the Standard Webhooks way: one of the
// "v1,<base64>" signatures is the HMAC-SHA256 of "id.timestamp.body", and
// the timestamp is within five minutes of now.
func verifyStandard(key []byte, h http.Header, body []byte, now time.Time) bool {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, s := range strings.Fields(h.Get("webhook-signature")) {
		if v, sig, _ := strings.Cut(s, ","); v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}
