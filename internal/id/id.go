// Package id makes the identifiers the server hands out: participant ids,
// track ids, WHIP/WHEP session ids and ETags.
//
// It lives under internal/ because every server package (sfu, room,
// signaling) needs the same rule and the import direction
// cmd -> internal/node -> signaling -> room -> sfu leaves no server package that all of them
// could import for it; internal/ keeps it out of the module's public API.
// It imports nothing of ours, so it adds no edge to that direction. config
// and loadtest do not use it: config imports none of our packages, and the
// load tester names its clients itself (no random ids).
package id

import (
	"crypto/rand"
	"encoding/hex"
)

// randomBytes is the entropy of an id: 128 bits, so an id is unguessable
// (a WHIP session URL is a capability) and never collides in practice.
const randomBytes = 16

// New returns prefix followed by 32 lower-case hex digits from crypto/rand,
// e.g. New("p_") is "p_4f1c...". The prefix says what the id names, which
// helps a person reading logs; ids are opaque to clients otherwise.
func New(prefix string) string {
	var b [randomBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	out := make([]byte, len(prefix)+hex.EncodedLen(randomBytes))
	copy(out, prefix)
	hex.Encode(out[len(prefix):], b[:])
	return string(out)
}
