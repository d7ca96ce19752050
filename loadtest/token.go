package loadtest

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenClaims are the claims of an access token (docs/protocol.md): who the
// participant is, which room, and what they may do.
type TokenClaims struct {
	// Identity is the participant's identity (claim "sub"); required.
	Identity string
	// Name is the display name (claim "name").
	Name string
	// Room is the room the token is for (claim "room").
	Room   string
	Grants Grants
	// IssuedAt defaults to now; the token expires TTL later (default 24h).
	IssuedAt time.Time
	TTL      time.Duration
}

// jwtClaims is the JSON payload of the token: the registered claims
// (sub, exp, iat) and HaloBuzz's own.
type jwtClaims struct {
	jwt.RegisteredClaims
	Name   string `json:"name,omitempty"`
	Room   string `json:"room,omitempty"`
	Grants Grants `json:"grants"`
}

// MintToken returns an HS256-signed JWT for c, signed with secret. It is
// for load tests against a server whose signing secret the tester knows.
// It mints with github.com/golang-jwt/jwt/v5, as a backend would.
func MintToken(secret string, c TokenClaims) (string, error) {
	if secret == "" {
		return "", errors.New("loadtest: token secret is empty")
	}
	if c.Identity == "" {
		return "", errors.New("loadtest: token identity is empty")
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	claims := jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Identity,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(iat.Add(ttl)),
		},
		Name:   c.Name,
		Room:   c.Room,
		Grants: c.Grants,
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("loadtest: sign token: %w", err)
	}
	return tok, nil
}

// TokenMinter returns a RunConfig.TokenFunc that mints a token per
// participant for room: publishers get publish and subscribe, viewers
// subscribe only.
func TokenMinter(secret, room string, ttl time.Duration) func(identity string, publish bool) (string, error) {
	return func(identity string, publish bool) (string, error) {
		return MintToken(secret, TokenClaims{
			Identity: identity,
			Name:     identity,
			Room:     room,
			Grants:   Grants{Publish: publish, Subscribe: true},
			TTL:      ttl,
		})
	}
}

// RoomTokenMinter returns a RunConfig.TokenFunc that mints a token per
// participant for the room it joins: publishers get publish and subscribe,
// viewers subscribe only.
func RoomTokenMinter(secret string, ttl time.Duration) func(identity, room string, publish bool) (string, error) {
	return func(identity, room string, publish bool) (string, error) {
		return TokenMinter(secret, room, ttl)(identity, publish)
	}
}
