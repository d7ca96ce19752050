package auth

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
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

// parser checks the token's form and signature. It refuses every alg but
// HS256 (also checked before it, see Verify), decodes base64url strictly
// (one spelling per token) and leaves the claims to Verify, which reads
// them only once the signature is good. It is safe for concurrent use.
var parser = jwt.NewParser(
	jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
	jwt.WithStrictDecoding(),
	jwt.WithoutClaimsValidation(),
)

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

// signedClaims is the JSON form of Claims that Sign writes.
type signedClaims struct {
	jwt.RegisteredClaims        // sub, exp, nbf, iat, jti
	Name                 string `json:"name,omitempty"`
	Room                 string `json:"room,omitempty"`
	Grants               Grants `json:"grants"`
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
	claims := signedClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Identity,
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			NotBefore: dateOrNil(c.NotBefore),
			IssuedAt:  dateOrNil(c.IssuedAt),
			ID:        c.ID,
		},
		Name:   c.Name,
		Room:   c.Room,
		Grants: c.Grants,
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.secret)
	if err != nil { // cannot happen for a []byte key and these field types
		return "", fmt.Errorf("%w: %v", ErrClaims, err)
	}
	if len(tok) > maxTokenLen { // unreachable with the claim limits; kept as a guard
		return "", fmt.Errorf("%w: token would be %d bytes, limit %d", ErrClaims, len(tok), maxTokenLen)
	}
	return tok, nil
}

// Verify checks token at time now and returns its claims. It checks, in
// order: size and shape, the header (HS256 only), the signature (before
// reading the payload), the claim rules in Claims, then exp and nbf with 5
// seconds of allowance for clock skew. Every error wraps one of the package's
// sentinel errors.
//
// jwt/v5 checks the form, the algorithm and the signature, and exp and nbf.
// Around it, Verify keeps the checks jwt/v5 does not make: a size bound;
// no byte outside base64url and '.' (Go's base64 decoder skips newlines);
// a header that is a JSON object without duplicate members, whose alg is a
// string (jwt/v5 reads the header into a map, last duplicate winning, and
// reports a wrong alg as a bad signature), with typ JWT if any and no crit
// extensions; a payload read member by member, names matched exactly,
// duplicates and wrong types refused (jwt/v5 decodes claims with
// encoding/json, which takes the last duplicate, matches names
// case-insensitively and accepts "exp":"123").
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
	h64, _, _ := strings.Cut(token, ".")
	hdr, err := decodeSegment("header", h64)
	if err != nil {
		return Claims{}, err
	}
	if err := checkHeader(hdr); err != nil {
		return Claims{}, err
	}
	var payload rawPayload
	if _, err := parser.ParseWithClaims(token, &payload, s.key); err != nil {
		return Claims{}, classify(err)
	}
	c, err := parsePayload(payload.data)
	if err != nil {
		return Claims{}, err
	}
	if err := c.validate(); err != nil {
		return Claims{}, err
	}
	// RFC 7519 sections 4.1.4 and 4.1.5: valid while now is before exp,
	// from nbf on, give or take the clock skew.
	v := jwt.NewValidator(jwt.WithExpirationRequired(), jwt.WithLeeway(clockSkew), jwt.WithTimeFunc(func() time.Time { return now }))
	reg := jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(c.ExpiresAt), NotBefore: dateOrNil(c.NotBefore)}
	if err := v.Validate(reg); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return Claims{}, fmt.Errorf("%w: expired at %s", ErrExpired, c.ExpiresAt.Format(time.RFC3339))
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return Claims{}, fmt.Errorf("%w: valid from %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
		default: // exp is present (validate checked), so nothing else can fail
			return Claims{}, fmt.Errorf("%w: %v", ErrClaims, err)
		}
	}
	return c, nil
}

// key is the jwt.Keyfunc: the one secret, for the one algorithm.
func (s *Signer) key(*jwt.Token) (any, error) { return s.secret, nil }

// classify maps an error of the jwt parser to the package's sentinels.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: %v", ErrSignature, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Errorf("%w: %v", ErrAlgorithm, err)
	default: // jwt.ErrTokenMalformed: segments, base64, JSON
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
}

// rawPayload is the jwt.Claims the parser fills: it keeps the payload's
// bytes, which Verify reads (parsePayload) only after the signature checked.
type rawPayload struct{ data []byte }

// UnmarshalJSON keeps a copy of the payload.
func (p *rawPayload) UnmarshalJSON(b []byte) error {
	p.data = bytes.Clone(b)
	return nil
}

// The jwt.Claims methods: the parser does not validate claims (Verify does,
// after reading them strictly), so none of them is consulted.
func (*rawPayload) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (*rawPayload) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (*rawPayload) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (*rawPayload) GetIssuer() (string, error)                   { return "", nil }
func (*rawPayload) GetSubject() (string, error)                  { return "", nil }
func (*rawPayload) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

func dateOrNil(t time.Time) *jwt.NumericDate {
	if t.IsZero() {
		return nil
	}
	return jwt.NewNumericDate(t)
}

// isTokenByte reports whether b may appear in a compact JWS: the base64url
// alphabet and the '.' separator.
func isTokenByte(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' ||
		b == '-' || b == '_' || b == '.'
}
