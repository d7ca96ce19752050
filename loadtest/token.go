package loadtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
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

// jwtClaims is the JSON payload of the token.
type jwtClaims struct {
	Sub    string `json:"sub"`
	Name   string `json:"name,omitempty"`
	Room   string `json:"room,omitempty"`
	Grants Grants `json:"grants"`
	Exp    int64  `json:"exp"`
	Iat    int64  `json:"iat"`
}

// jwtHeader is the fixed header of the tokens minted here.
const jwtHeader = `{"alg":"HS256","typ":"JWT"}`

// MintToken returns an HS256-signed JWT for c, signed with secret. It is
// for load tests against a server whose signing secret the tester knows.
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
	payload, err := json.Marshal(jwtClaims{
		Sub:    c.Identity,
		Name:   c.Name,
		Room:   c.Room,
		Grants: c.Grants,
		Iat:    iat.Unix(),
		Exp:    iat.Add(ttl).Unix(),
	})
	if err != nil {
		return "", fmt.Errorf("loadtest: encode token claims: %w", err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(jwtHeader)) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil)), nil
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
