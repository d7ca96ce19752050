package room

import (
	"errors"
	"testing"
)

func TestCursor_RoundTripsAndRefusesForeignOnes(t *testing.T) {
	c := encodeCursor(42, "room.name-1")
	v, k, err := decodeCursor(c)
	if err != nil || v != 42 || k != "room.name-1" {
		t.Fatalf("decode(encode(42, room.name-1)) = %d %q %v", v, k, err)
	}
	for _, bad := range []string{"!!", "bm90IGEgY3Vyc29y", encodeCursor(1, "")[:2], string(make([]byte, 300))} {
		if _, _, err := decodeCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: %v, want ErrBadCursor", bad, err)
		}
	}
}

// A page cursor comes from the API's caller: outside input.
func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{"", encodeCursor(0, "a"), encodeCursor(1<<40, "room"), "MTox", "LTE6YQ", "!!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, k, err := decodeCursor(s)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v does not wrap ErrBadCursor", err)
			}
			return
		}
		if s != "" && (v < 0 || k == "") {
			t.Fatalf("accepted %q as %d %q", s, v, k)
		}
	})
}
