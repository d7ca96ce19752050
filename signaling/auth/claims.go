package auth

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits on claim sizes. They keep every valid token well under maxTokenLen.
const (
	maxIdentityLen = 128 // characters (runes) in Claims.Identity
	maxNameLen     = 128 // characters (runes) in Claims.Name
	maxRoomLen     = 64  // bytes in a room name, which is ASCII
	maxIDLen       = 128 // characters (runes) in Claims.ID
)

// NumericDate values are whole seconds since the Unix epoch, limited to years
// 1970..9999 so that converting them to time.Time cannot overflow.
const (
	minDate = 0
	maxDate = 253402300799 // 9999-12-31T23:59:59Z
)

// Grants say what a token allows.
type Grants struct {
	Publish   bool `json:"publish,omitempty"`
	Subscribe bool `json:"subscribe,omitempty"`
	Admin     bool `json:"admin,omitempty"`
	// Moderate lets the token act on its own room through the server API
	// (moderate.go); it needs a room (CanModerate).
	Moderate bool `json:"moderate,omitempty"`
}

// Claims are the contents of an access token.
//
// Times travel as NumericDate (whole seconds): Sign drops sub-second parts
// and Verify returns times in UTC. A zero time means the claim is absent.
type Claims struct {
	Identity  string    // JWT "sub"; required, 1..128 chars
	Name      string    // "name", optional display name, <= 128 chars
	Room      string    // "room"; "" means any room (only allowed with Admin grant; Verify rejects otherwise)
	Grants    Grants    // "grants"
	ExpiresAt time.Time // "exp" (required)
	NotBefore time.Time // "nbf" (optional)
	IssuedAt  time.Time // "iat"
	// ID is the JWT "jti" (RFC 7519 section 4.1.7), optional, <= 128
	// chars: a token minted for one request carries a unique one, so the
	// verifier can refuse its second use (signaling's relay tokens).
	ID string
}

// RoomAllowed reports whether the claims allow joining room: room must be a
// valid room name and either equal Room, or Room is "" and the claims carry
// the Admin grant. An Admin token bound to one room allows only that room.
func (c Claims) RoomAllowed(room string) bool {
	if !ValidRoomName(room) {
		return false
	}
	if c.Room == "" {
		return c.Grants.Admin
	}
	return c.Room == room
}

// ValidRoomName reports whether name is a usable room name: 1..64 characters
// of [A-Za-z0-9_.-].
func ValidRoomName(name string) bool {
	if len(name) == 0 || len(name) > maxRoomLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch b := name[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == '_', b == '.', b == '-':
		default:
			return false
		}
	}
	return true
}

// validate checks the claim rules that Sign and Verify share, so Sign never
// mints a token that Verify would refuse for its claims.
func (c Claims) validate() error {
	if c.Identity == "" {
		return fmt.Errorf("%w: missing sub", ErrClaims)
	}
	if err := checkText("sub", c.Identity, maxIdentityLen); err != nil {
		return err
	}
	if err := checkText("name", c.Name, maxNameLen); err != nil {
		return err
	}
	if err := checkText("jti", c.ID, maxIDLen); err != nil {
		return err
	}
	if c.Room == "" {
		if !c.Grants.Admin {
			return fmt.Errorf("%w: empty room (any room) requires the admin grant", ErrClaims)
		}
	} else if !ValidRoomName(c.Room) {
		return fmt.Errorf("%w: room %q is not 1..%d characters of [A-Za-z0-9_.-]", ErrClaims, clip(c.Room), maxRoomLen)
	}
	if c.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: missing exp", ErrClaims)
	}
	for _, d := range [...]struct {
		name string
		t    time.Time
	}{{"exp", c.ExpiresAt}, {"nbf", c.NotBefore}, {"iat", c.IssuedAt}} {
		if d.t.IsZero() {
			continue
		}
		if s := d.t.Unix(); s < minDate || s > maxDate {
			return fmt.Errorf("%w: %s %d is outside years 1970..9999", ErrClaims, d.name, s)
		}
	}
	return nil
}

// checkText checks that s is valid UTF-8 of at most limit characters.
func checkText(field, s string, limit int) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrClaims, field)
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return fmt.Errorf("%w: %s has %d characters, limit %d", ErrClaims, field, n, limit)
	}
	return nil
}

// clip shortens s for quoting in an error message.
func clip(s string) string {
	const n = 32
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
