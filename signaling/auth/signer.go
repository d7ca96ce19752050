package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

const (
	// minSecretLen is the shortest HS256 key we accept: RFC 7518 section
	// 3.2 requires a key at least as long as the hash output.
	minSecretLen = sha256.Size
	// maxTokenLen bounds the work Verify does on untrusted input.
	maxTokenLen = 4096
	// clockSkew is how far the clocks of the token minter and the verifier
	// may disagree before exp and nbf are enforced.
	clockSkew = 5 * time.Second
)

// header is the base64url JOSE header of every token Sign makes.
var header = b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// Signer makes and checks HS256 access tokens under one secret. It is safe
// for concurrent use. The zero Signer has no secret and refuses every token;
// use NewSigner.
type Signer struct {
	secret []byte
}

// NewSigner returns a Signer for secret, which must be at least 32 bytes
// (and should be random). The Signer keeps its own copy of secret.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("auth: secret is %d bytes, HS256 needs at least %d", len(secret), minSecretLen)
	}
	return &Signer{secret: bytes.Clone(secret)}, nil
}

// payload is the JSON form of Claims that Sign writes.
type payload struct {
	Sub    string `json:"sub"`
	Name   string `json:"name,omitempty"`
	Room   string `json:"room,omitempty"`
	Grants Grants `json:"grants"`
	Exp    int64  `json:"exp"`
	Nbf    *int64 `json:"nbf,omitempty"`
	Iat    *int64 `json:"iat,omitempty"`
}

// Sign returns a signed token carrying c. It fails with ErrClaims if c breaks
// the rules in Claims, so every token it makes passes Verify's claim checks.
// Times are truncated to whole seconds.
func (s *Signer) Sign(c Claims) (string, error) {
	if s == nil || len(s.secret) == 0 {
		return "", fmt.Errorf("%w: signer has no secret (use NewSigner)", ErrSignature)
	}
	if err := c.validate(); err != nil {
		return "", err
	}
	p := payload{
		Sub:    c.Identity,
		Name:   c.Name,
		Room:   c.Room,
		Grants: c.Grants,
		Exp:    c.ExpiresAt.Unix(),
		Nbf:    unixOrNil(c.NotBefore),
		Iat:    unixOrNil(c.IssuedAt),
	}
	body, err := json.Marshal(p)
	if err != nil { // cannot happen for these field types
		return "", fmt.Errorf("%w: %v", ErrClaims, err)
	}
	tok := make([]byte, 0, len(header)+1+b64.EncodedLen(len(body))+1+b64.EncodedLen(sha256.Size))
	tok = append(tok, header...)
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, body)
	var sum [sha256.Size]byte
	sig := s.mac(sum[:0], tok)
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, sig)
	if len(tok) > maxTokenLen { // unreachable with the claim limits; kept as a guard
		return "", fmt.Errorf("%w: token would be %d bytes, limit %d", ErrClaims, len(tok), maxTokenLen)
	}
	return string(tok), nil
}

// Verify checks token at time now and returns its claims. It checks, in
// order: size and shape, the header (HS256 only), the signature (before
// reading the payload), the claim rules in Claims, then exp and nbf with 5
// seconds of allowance for clock skew. Every error wraps one of the package's
// sentinel errors.
func (s *Signer) Verify(token string, now time.Time) (Claims, error) {
	if s == nil || len(s.secret) == 0 {
		return Claims{}, fmt.Errorf("%w: signer has no secret (use NewSigner)", ErrSignature)
	}
	if len(token) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: token is %d bytes, limit %d", ErrMalformed, len(token), maxTokenLen)
	}
	if token == "" {
		return Claims{}, fmt.Errorf("%w: empty token", ErrMalformed)
	}
	// The base64 decoder skips newlines; refusing every byte outside the
	// alphabet keeps exactly one spelling of each token valid.
	for i := 0; i < len(token); i++ {
		if !isTokenByte(token[i]) {
			return Claims{}, fmt.Errorf("%w: byte %d is not base64url or '.'", ErrMalformed, i)
		}
	}
	if n := strings.Count(token, "."); n != 2 {
		return Claims{}, fmt.Errorf("%w: %d parts, want 3 (header.payload.signature)", ErrMalformed, n+1)
	}
	h64, rest, _ := strings.Cut(token, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	hdr, err := decodeSegment("header", h64)
	if err != nil {
		return Claims{}, err
	}
	body, err := decodeSegment("payload", p64)
	if err != nil {
		return Claims{}, err
	}
	sig, err := decodeSegment("signature", s64)
	if err != nil {
		return Claims{}, err
	}
	if err := checkHeader(hdr); err != nil {
		return Claims{}, err
	}
	var sum [sha256.Size]byte
	signed := token[:len(h64)+1+len(p64)]
	if !hmac.Equal(sig, s.mac(sum[:0], []byte(signed))) {
		return Claims{}, fmt.Errorf("%w: signature does not match header and payload", ErrSignature)
	}
	c, err := parsePayload(body)
	if err != nil {
		return Claims{}, err
	}
	if err := c.validate(); err != nil {
		return Claims{}, err
	}
	// RFC 7519 section 4.1.4: valid only while now is before exp.
	if !now.Before(c.ExpiresAt.Add(clockSkew)) {
		return Claims{}, fmt.Errorf("%w: expired at %s", ErrExpired, c.ExpiresAt.Format(time.RFC3339))
	}
	// RFC 7519 section 4.1.5: valid from nbf on.
	if !c.NotBefore.IsZero() && now.Add(clockSkew).Before(c.NotBefore) {
		return Claims{}, fmt.Errorf("%w: valid from %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
	}
	return c, nil
}

// mac appends the HMAC-SHA256 of msg under the signer's secret to dst.
func (s *Signer) mac(dst, msg []byte) []byte {
	h := hmac.New(sha256.New, s.secret)
	h.Write(msg)
	return h.Sum(dst)
}

func unixOrNil(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	u := t.Unix()
	return &u
}

// isTokenByte reports whether b may appear in a compact JWS: the base64url
// alphabet and the '.' separator.
func isTokenByte(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' ||
		b == '-' || b == '_' || b == '.'
}
