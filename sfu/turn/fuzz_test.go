package turn

import (
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"
)

// FuzzAuthenticate feeds usernames from the network to the credential
// check: it never panics, and grants only a well-formed, unexpired one.
func FuzzAuthenticate(f *testing.F) {
	for _, s := range []string{"1767225600:alice", "alice", ":", "0:x", "-5:x", "99999999999999:x", "1767225600:", "1767225600:a:b:c", "\x00:\xff"} {
		f.Add(s, true)
	}
	s := &Server{opts: Options{Secret: testSecret}, metrics: newMetrics(func(string) float64 { return 0 }), now: time.Now}
	f.Fuzz(func(t *testing.T, username string, allocate bool) {
		m := stun.MethodRefresh
		if allocate {
			m = stun.MethodAllocate
		}
		id, key, ok := s.authenticate(&pturn.RequestAttributes{Username: username, Realm: Realm, Method: m})
		exp, ident, err := ParseUsername(username)
		if ok != (err == nil && (!allocate || time.Now().Before(exp))) {
			t.Fatalf("authenticate(%q, allocate=%v) = %v, parse err %v expiry %v", username, allocate, ok, err, exp)
		}
		if ok && (id != ident || len(key) != 16) {
			t.Fatalf("authenticate(%q) = %q, %d-byte key", username, id, len(key))
		}
	})
}
