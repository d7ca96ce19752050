package sfu

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pion/stun/v4"
)

// pionUfrag is checkUfrag as Pion's STUN decoder reads the packet: the
// reference the in-place reader must agree with.
func pionUfrag(pkt []byte) (string, bool) {
	if !stun.IsMessage(pkt) {
		return "", false
	}
	m := &stun.Message{Raw: append([]byte(nil), pkt...)}
	var user stun.Username
	if m.Decode() != nil || m.Type != stun.BindingRequest || user.GetFrom(m) != nil {
		return "", false
	}
	local, _, _ := strings.Cut(string(user), ":")
	return local, true
}

func bindingRequest(t testing.TB, user string, extra ...stun.Setter) []byte {
	t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest}
	setters = append(setters, extra...)
	if user != "" {
		setters = append(setters, stun.NewUsername(user))
	}
	setters = append(setters, stun.NewShortTermIntegrity("pwd"), stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func TestCheckUfrag_ReadsTheUsernameAsPionDoes(t *testing.T) {
	for _, pkt := range [][]byte{
		bindingRequest(t, "ours:theirs"),
		bindingRequest(t, "abc:d", stun.NewSoftware("x")), // padding before USERNAME
		bindingRequest(t, "nocolon"),
		bindingRequest(t, ""),
		func() []byte {
			m, _ := stun.Build(stun.TransactionID, stun.BindingSuccess, stun.NewUsername("a:b"))
			return m.Raw
		}(),
		[]byte("not stun at all, longer than twenty bytes"),
	} {
		want, wantOK := pionUfrag(pkt)
		got, ok := checkUfrag(pkt)
		if ok != wantOK || string(got) != want {
			t.Errorf("checkUfrag = %q, %v; Pion reads %q, %v", got, ok, want, wantOK)
		}
	}
}

func TestCheckUfrag_AllocatesNothing(t *testing.T) {
	pkt := bindingRequest(t, "ours:theirs")
	p := &parkedSet{m: map[string]*Subscriber{"ours": nil}}
	if n := testing.AllocsPerRun(100, func() {
		u, _ := checkUfrag(pkt)
		_ = p.get(u)
	}); n != 0 {
		t.Errorf("%v allocations per check, want 0", n)
	}
}

// FuzzCheckUfrag: whatever arrives on the media port, the in-place reader
// does not panic, and where Pion's decoder finds a binding request with a
// USERNAME, both read the same ufrag.
func FuzzCheckUfrag(f *testing.F) {
	f.Add(bindingRequest(f, "ours:theirs"))
	f.Add(bindingRequest(f, "a:b", stun.NewSoftware("halo")))
	f.Add([]byte{0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 6, 0, 9})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		got, ok := checkUfrag(pkt)
		if ok && !bytes.Contains(pkt, got) {
			t.Fatalf("ufrag %q is not in the packet", got)
		}
		want, wantOK := pionUfrag(pkt)
		if wantOK && (!ok || string(got) != want) {
			t.Fatalf("checkUfrag = %q, %v; Pion reads %q", got, ok, want)
		}
	})
}
