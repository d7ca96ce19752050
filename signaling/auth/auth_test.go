package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret  = []byte("0123456789abcdef0123456789abcdef")
	otherSecret = []byte("fedcba9876543210fedcba9876543210")
	testNow     = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	sentinels   = []error{ErrMalformed, ErrAlgorithm, ErrSignature, ErrExpired, ErrNotYetValid, ErrClaims}
)

func newTestSigner(t testing.TB, secret []byte) *Signer {
	t.Helper()
	s, err := NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validClaims() Claims {
	return Claims{
		Identity:  "user-42",
		Name:      "Ada",
		Room:      "lobby",
		Grants:    Grants{Publish: true, Subscribe: true},
		ExpiresAt: testNow.Add(time.Hour),
		NotBefore: testNow.Add(-time.Minute),
		IssuedAt:  testNow.Add(-time.Minute),
	}
}

func mustSign(t testing.TB, s *Signer, c Claims) string {
	t.Helper()
	tok, err := s.Sign(c)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return tok
}

// forge builds a token from raw header and payload JSON, HS256-signed under
// secret with only the standard library, the way any JWT library would.
func forge(secret []byte, header, payload string) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	return input + "." + enc.EncodeToString(hs256(secret, input))
}

func hs256(secret []byte, input string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(input))
	return h.Sum(nil)
}

// matchedSentinels lists the sentinels err matches; a well-formed error
// matches exactly one.
func matchedSentinels(err error) []error {
	var out []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}

func claimsEqual(a, b Claims) bool {
	return a.Identity == b.Identity && a.Name == b.Name && a.Room == b.Room && a.Grants == b.Grants && a.ID == b.ID &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.NotBefore.Equal(b.NotBefore) && a.IssuedAt.Equal(b.IssuedAt)
}

func TestSignVerify_RoundTripKeepsClaimsToTheSecond(t *testing.T) {
	s := newTestSigner(t, testSecret)
	in := validClaims()
	in.ExpiresAt = in.ExpiresAt.Add(750 * time.Millisecond) // dropped by NumericDate
	in.Identity = "\U0001F600-ünïcode"
	in.Name = "Ada <Lovelace> & ☃"
	in.ID = "relay-7f3a\u00e9"

	got, err := s.Verify(mustSign(t, s, in), testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := in
	want.ExpiresAt = in.ExpiresAt.Truncate(time.Second)
	if !claimsEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if got.ExpiresAt.Location() != time.UTC {
		t.Errorf("ExpiresAt location = %v, want UTC", got.ExpiresAt.Location())
	}
}

func TestSignVerify_OptionalClaimsStayAbsent(t *testing.T) {
	s := newTestSigner(t, testSecret)
	in := Claims{Identity: "admin", Grants: Grants{Admin: true}, ExpiresAt: testNow.Add(time.Minute)}
	got, err := s.Verify(mustSign(t, s, in), testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !claimsEqual(got, in) || !got.NotBefore.IsZero() || !got.IssuedAt.IsZero() || got.ID != "" {
		t.Fatalf("got %+v, want %+v", got, in)
	}
}

func TestSign_RejectsInvalidClaims(t *testing.T) {
	s := newTestSigner(t, testSecret)
	tests := []struct {
		name   string
		mutate func(*Claims)
	}{
		{"missing identity", func(c *Claims) { c.Identity = "" }},
		{"identity of 129 characters", func(c *Claims) { c.Identity = strings.Repeat("a", 129) }},
		{"identity not UTF-8", func(c *Claims) { c.Identity = "a\xffb" }},
		{"name of 129 characters", func(c *Claims) { c.Name = strings.Repeat("é", 129) }},
		{"empty room without admin", func(c *Claims) { c.Room = "" }},
		{"room with a slash", func(c *Claims) { c.Room = "a/b" }},
		{"room of 65 characters", func(c *Claims) { c.Room = strings.Repeat("r", 65) }},
		{"missing exp", func(c *Claims) { c.ExpiresAt = time.Time{} }},
		{"exp before 1970", func(c *Claims) { c.ExpiresAt = time.Unix(-1, 0) }},
		{"exp after 9999", func(c *Claims) { c.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"nbf before 1970", func(c *Claims) { c.NotBefore = time.Unix(-100, 0) }},
		{"jti of 129 characters", func(c *Claims) { c.ID = strings.Repeat("j", 129) }},
		{"jti not UTF-8", func(c *Claims) { c.ID = "a\xffb" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validClaims()
			tt.mutate(&c)
			tok, err := s.Sign(c)
			if !errors.Is(err, ErrClaims) {
				t.Fatalf("Sign = %q, %v; want ErrClaims", tok, err)
			}
		})
	}
}

func TestSign_AcceptsLimitLengthFields(t *testing.T) {
	s := newTestSigner(t, testSecret)
	c := validClaims()
	// The longest encoding: encoding/json writes '<' as the six bytes \u003c.
	c.Identity = strings.Repeat("<", maxIdentityLen)
	c.Name = strings.Repeat("<", maxNameLen)
	c.Room = strings.Repeat("r", maxRoomLen)
	c.ID = strings.Repeat("<", maxIDLen)
	c.Grants = Grants{Publish: true, Subscribe: true, Admin: true}
	tok := mustSign(t, s, c)
	if len(tok) > maxTokenLen {
		t.Fatalf("token is %d bytes, over the %d Verify accepts", len(tok), maxTokenLen)
	}
	got, err := s.Verify(tok, testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !claimsEqual(got, c) {
		t.Fatalf("got %+v, want %+v", got, c)
	}
}

func TestVerify_RejectsBadTokens(t *testing.T) {
	s := newTestSigner(t, testSecret)
	valid := mustSign(t, s, validClaims())
	h, p, sig := splitToken(t, valid)
	hs := `{"alg":"HS256","typ":"JWT"}`
	exp := testNow.Add(time.Hour).Unix()
	payload := func(members string) string {
		return fmt.Sprintf(`{"sub":"u","room":"lobby","exp":%d%s}`, exp, members)
	}
	flip := func(s string) string { // change the first character of a base64url part
		if s[0] == 'A' {
			return "B" + s[1:]
		}
		return "A" + s[1:]
	}

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"two parts", h + "." + p, ErrMalformed},
		{"four parts", valid + ".x", ErrMalformed},
		{"bad base64 in payload", h + ".!!!." + sig, ErrMalformed},
		{"bad base64 length in header", "A." + p + "." + sig, ErrMalformed},
		{"base64 padding", h + "=." + p + "." + sig, ErrMalformed},
		{"newline inside signature", h + "." + p + "." + sig[:10] + "\n" + sig[10:], ErrMalformed},
		{"non-canonical signature encoding", h + "." + p + "." + sig[:len(sig)-1] + nonCanonical(sig[len(sig)-1]), ErrMalformed},
		{"header not JSON", forge(testSecret, `{"alg":`, payload("")), ErrMalformed},
		{"header is an array", forge(testSecret, `["HS256"]`, payload("")), ErrMalformed},
		{"alg is a number", forge(testSecret, `{"alg":256}`, payload("")), ErrMalformed},
		{"duplicate alg, none last", forge(testSecret, `{"alg":"HS256","alg":"none"}`, payload("")), ErrMalformed},
		{"duplicate alg, HS256 last", forge(testSecret, `{"alg":"none","alg":"HS256"}`, payload("")), ErrMalformed},
		{"alg none", b64Part(`{"alg":"none","typ":"JWT"}`) + "." + b64Part(payload("")) + ".", ErrAlgorithm},
		{"alg missing", forge(testSecret, `{"typ":"JWT"}`, payload("")), ErrAlgorithm},
		{"alg lower case", forge(testSecret, `{"alg":"hs256"}`, payload("")), ErrAlgorithm},
		{"alg HS512", forgeHS512(testSecret, `{"alg":"HS512","typ":"JWT"}`, payload("")), ErrAlgorithm},
		{"alg RS256", b64Part(`{"alg":"RS256","typ":"JWT"}`) + "." + b64Part(payload("")) + "." + sig, ErrAlgorithm},
		{"typ not JWT", forge(testSecret, `{"alg":"HS256","typ":"JWE"}`, payload("")), ErrAlgorithm},
		{"crit extension", forge(testSecret, `{"alg":"HS256","crit":["b64"],"b64":false}`, payload("")), ErrAlgorithm},
		{"tampered payload", h + "." + b64Part(payload(`,"grants":{"admin":true}`)) + "." + sig, ErrSignature},
		{"tampered signature", h + "." + p + "." + flip(sig), ErrSignature},
		{"truncated signature", h + "." + p + "." + sig[:len(sig)-3], ErrSignature},
		{"empty signature", h + "." + p + ".", ErrSignature},
		{"signed with another secret", forge(otherSecret, hs, payload("")), ErrSignature},
		{"payload not an object", forge(testSecret, hs, `"sub"`), ErrMalformed},
		{"payload null", forge(testSecret, hs, `null`), ErrMalformed},
		{"payload empty", forge(testSecret, hs, ``), ErrMalformed},
		{"exp a numeric string", forge(testSecret, hs, `{"sub":"u","room":"lobby","exp":"1900000000"}`), ErrMalformed},
		{"Sub is not sub", forge(testSecret, hs, fmt.Sprintf(`{"Sub":"u","room":"lobby","exp":%d}`, exp)), ErrClaims},
		{"trailing data after payload", forge(testSecret, hs, payload("")+`{}`), ErrMalformed},
		{"sub is a number", forge(testSecret, hs, fmt.Sprintf(`{"sub":7,"room":"lobby","exp":%d}`, exp)), ErrMalformed},
		{"exp is a string", forge(testSecret, hs, fmt.Sprintf(`{"sub":"u","room":"lobby","exp":"%d"}`, exp)), ErrMalformed},
		{"grants is an array", forge(testSecret, hs, payload(`,"grants":["admin"]`)), ErrMalformed},
		{"grant is a string", forge(testSecret, hs, payload(`,"grants":{"admin":"true"}`)), ErrMalformed},
		{"duplicate sub", forge(testSecret, hs, payload(`,"sub":"admin"`)), ErrMalformed},
		{"duplicate grant", forge(testSecret, hs, payload(`,"grants":{"admin":false,"admin":true}`)), ErrMalformed},
		{"expired", forge(testSecret, hs, fmt.Sprintf(`{"sub":"u","room":"lobby","exp":%d}`, testNow.Add(-time.Minute).Unix())), ErrExpired},
		{"nbf in future", forge(testSecret, hs, payload(fmt.Sprintf(`,"nbf":%d`, testNow.Add(time.Minute).Unix()))), ErrNotYetValid},
		{"missing sub", forge(testSecret, hs, fmt.Sprintf(`{"room":"lobby","exp":%d}`, exp)), ErrClaims},
		{"null sub", forge(testSecret, hs, fmt.Sprintf(`{"sub":null,"room":"lobby","exp":%d}`, exp)), ErrClaims},
		{"upper-case SUB is not sub", forge(testSecret, hs, fmt.Sprintf(`{"SUB":"u","room":"lobby","exp":%d}`, exp)), ErrClaims},
		{"missing exp", forge(testSecret, hs, `{"sub":"u","room":"lobby"}`), ErrClaims},
		{"exp beyond year 9999", forge(testSecret, hs, `{"sub":"u","room":"lobby","exp":1e300}`), ErrClaims},
		{"exp overflows int64", forge(testSecret, hs, `{"sub":"u","room":"lobby","exp":99999999999999999999}`), ErrClaims},
		{"negative exp", forge(testSecret, hs, `{"sub":"u","room":"lobby","exp":-1}`), ErrClaims},
		{"room empty without admin", forge(testSecret, hs, fmt.Sprintf(`{"sub":"u","exp":%d,"grants":{"publish":true}}`, exp)), ErrClaims},
		{"room invalid name", forge(testSecret, hs, fmt.Sprintf(`{"sub":"u","room":"../x y","exp":%d}`, exp)), ErrClaims},
		{"jti is a number", forge(testSecret, hs, payload(`,"jti":42`)), ErrMalformed},
		{"duplicate jti", forge(testSecret, hs, payload(`,"jti":"a","jti":"b"`)), ErrMalformed},
		{"jti too long", forge(testSecret, hs, payload(fmt.Sprintf(`,"jti":"%s"`, strings.Repeat("j", 129)))), ErrClaims},
		{"sub too long", forge(testSecret, hs, fmt.Sprintf(`{"sub":"%s","room":"lobby","exp":%d}`, strings.Repeat("a", 129), exp)), ErrClaims},
		{"oversize token", forge(testSecret, hs, payload(fmt.Sprintf(`,"pad":"%s"`, strings.Repeat("x", 3200)))), ErrMalformed},
		{"oversize garbage", strings.Repeat("A", maxTokenLen+1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.Verify(tt.token, testNow)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
			t.Log(err)
			if m := matchedSentinels(err); len(m) != 1 {
				t.Fatalf("error %q matches %d sentinels, want 1", err, len(m))
			}
			if c != (Claims{}) {
				t.Fatalf("Verify returned claims %+v with error", c)
			}
		})
	}
}

func TestVerify_AllowsFiveSecondsOfClockSkew(t *testing.T) {
	s := newTestSigner(t, testSecret)
	tests := []struct {
		name     string
		exp, nbf time.Duration // relative to now
		want     error
	}{
		{"exp 4s ago", -4 * time.Second, 0, nil},
		{"exp 5s ago", -5 * time.Second, 0, ErrExpired},
		{"nbf in 5s", time.Hour, 5 * time.Second, nil},
		{"nbf in 6s", time.Hour, 6 * time.Second, ErrNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validClaims()
			c.ExpiresAt = testNow.Add(tt.exp)
			c.NotBefore = time.Time{}
			if tt.nbf != 0 {
				c.NotBefore = testNow.Add(tt.nbf)
			}
			_, err := s.Verify(mustSign(t, s, c), testNow)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

// A token built by hand from the standard library, as another JWT library
// would make it: other member order, whitespace, registered claims we do not
// use, a fractional iat.
func TestVerify_AcceptsHS256TokenMadeByHand(t *testing.T) {
	s := newTestSigner(t, testSecret)
	header := `{"typ":"JWT", "alg":"HS256", "kid":"k1"}`
	payload := fmt.Sprintf(`{ "iss":"api", "jti":"x1", "exp":%d, "grants":{"subscribe":true,"record":true},
		"room":"stage-1", "sub":"viewer\u002d7", "iat":%d.25 }`, testNow.Add(time.Hour).Unix(), testNow.Unix())
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte(input))
	token := input + "." + enc.EncodeToString(mac.Sum(nil))

	got, err := s.Verify(token, testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := Claims{
		Identity:  "viewer-7",
		Room:      "stage-1",
		Grants:    Grants{Subscribe: true},
		ExpiresAt: testNow.Add(time.Hour),
		IssuedAt:  testNow,
		ID:        "x1",
	}
	if !claimsEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// Tokens interoperate with a JWT library used the ordinary way: one it
// mints verifies here, and one minted here verifies there with the same
// claims.
func TestVerify_InteroperatesWithJWTLibrary(t *testing.T) {
	s := newTestSigner(t, testSecret)
	theirs, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "viewer-9", "room": "lobby", "grants": map[string]bool{"subscribe": true},
		"exp": testNow.Add(time.Hour).Unix(), "iss": "backend",
	}).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(theirs, testNow)
	if err != nil {
		t.Fatalf("Verify(jwt/v5 token): %v", err)
	}
	if want := (Claims{Identity: "viewer-9", Room: "lobby", Grants: Grants{Subscribe: true}, ExpiresAt: testNow.Add(time.Hour)}); !claimsEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	ours := mustSign(t, s, validClaims())
	var mc jwt.MapClaims
	_, err = jwt.ParseWithClaims(ours, &mc, func(*jwt.Token) (any, error) { return testSecret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return testNow }))
	if err != nil {
		t.Fatalf("jwt/v5 parsing our token: %v", err)
	}
	if mc["sub"] != "user-42" || mc["room"] != "lobby" || mc["name"] != "Ada" {
		t.Fatalf("jwt/v5 read %v", mc)
	}
}

// The HS256 example of RFC 7515 appendix A.1 passes the signature check; it
// then fails on our claim rules because it has no "sub".
func TestVerify_RFC7515ExampleSignatureChecks(t *testing.T) {
	key, err := base64.RawURLEncoding.DecodeString("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
	if err != nil {
		t.Fatal(err)
	}
	const token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9" +
		".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" +
		".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	s := newTestSigner(t, key)
	if _, err := s.Verify(token, time.Unix(1300819380-60, 0)); !errors.Is(err, ErrClaims) {
		t.Fatalf("Verify: %v, want ErrClaims (missing sub) after a good signature", err)
	}
	if _, err := newTestSigner(t, testSecret).Verify(token, time.Unix(1300819380-60, 0)); !errors.Is(err, ErrSignature) {
		t.Fatalf("Verify under another key: %v, want ErrSignature", err)
	}
}

func TestVerify_ErrorSaysWhy(t *testing.T) {
	s := newTestSigner(t, testSecret)
	tok := forge(testSecret, `{"alg":"HS256"}`, `{"sub":"u","exp":1900000000}`)
	_, err := s.Verify(tok, testNow)
	if !errors.Is(err, ErrClaims) || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("error %q should wrap ErrClaims and mention the admin grant", err)
	}
}

func TestNewSigner_RejectsShortSecret(t *testing.T) {
	for _, n := range []int{0, 1, 31} {
		if s, err := NewSigner(make([]byte, n)); err == nil || s != nil {
			t.Errorf("NewSigner(%d bytes) = %v, %v; want error", n, s, err)
		}
	}
	if _, err := NewSigner(make([]byte, 32)); err != nil {
		t.Errorf("NewSigner(32 bytes): %v", err)
	}
}

func TestNewSigner_KeepsItsOwnCopyOfTheSecret(t *testing.T) {
	secret := append([]byte(nil), testSecret...)
	s := newTestSigner(t, secret)
	tok := mustSign(t, s, validClaims())
	secret[0] ^= 0xff
	if _, err := s.Verify(tok, testNow); err != nil {
		t.Fatalf("Verify after caller changed its secret slice: %v", err)
	}
}

func TestSigner_ZeroValueRefusesEverything(t *testing.T) {
	var zero Signer
	var nilSigner *Signer
	empty := forge(nil, `{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"u","room":"r","exp":%d}`, testNow.Add(time.Hour).Unix()))
	for _, s := range []*Signer{&zero, nilSigner} {
		if _, err := s.Verify(empty, testNow); !errors.Is(err, ErrSignature) {
			t.Errorf("Verify with no secret: %v, want ErrSignature", err)
		}
		if tok, err := s.Sign(validClaims()); err == nil {
			t.Errorf("Sign with no secret = %q, want error", tok)
		}
	}
}

func TestSigner_ConcurrentUse(t *testing.T) {
	s := newTestSigner(t, testSecret)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			c := validClaims()
			c.Identity = fmt.Sprintf("user-%d", i)
			for range 50 {
				tok, err := s.Sign(c)
				if err == nil {
					_, err = s.Verify(tok, testNow)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClaims_RoomAllowed(t *testing.T) {
	tests := []struct {
		name  string
		room  string // token room
		admin bool
		join  string
		want  bool
	}{
		{"same room", "lobby", false, "lobby", true},
		{"other room", "lobby", false, "stage", false},
		{"room names are case-sensitive", "lobby", false, "Lobby", false},
		{"admin bound to one room", "lobby", true, "stage", false},
		{"admin for any room", "", true, "stage", true},
		{"any room without admin", "", false, "stage", false},
		{"empty join with any-room admin", "", true, "", false},
		{"empty join without admin", "", false, "", false},
		{"invalid join name", "", true, "a b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Claims{Room: tt.room, Grants: Grants{Admin: tt.admin}}
			if got := c.RoomAllowed(tt.join); got != tt.want {
				t.Fatalf("RoomAllowed(%q) with room %q admin %v = %v, want %v", tt.join, tt.room, tt.admin, got, tt.want)
			}
		})
	}
}

func TestValidRoomName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"lobby", true},
		{"Stage_1.main-B", true},
		{"a", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"with space", false},
		{"slash/room", false},
		{"tab\t", false},
		{"null\x00", false},
		{"café", false},
		{"emoji😀", false},
		{"colon:x", false},
	}
	for _, tt := range tests {
		if got := ValidRoomName(tt.name); got != tt.want {
			t.Errorf("ValidRoomName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	s := newTestSigner(f, testSecret)
	valid := mustSign(f, s, validClaims())
	admin := mustSign(f, s, Claims{Identity: "a", Grants: Grants{Admin: true}, ExpiresAt: testNow.Add(time.Minute)})
	f.Add(valid)
	f.Add(admin)
	f.Add("")
	f.Add("a.b")
	f.Add("a.b.c.d")
	f.Add(valid[:len(valid)-3])
	f.Add(strings.Replace(valid, ".", "=.", 1))
	f.Add(forge(testSecret, `{"alg":"none"}`, `{"sub":"u"}`))
	f.Add(forge(testSecret, `{"alg":"HS256"}`, `{"sub":"u","room":"r","exp":1e400,"nbf":-0.5}`))
	f.Add(forge(testSecret, `{"alg":"HS256"}`, `{"sub":"u","room":"r","exp":1900000000.9,"grants":{"admin":true,"admin":true}}`))
	f.Add(forge(testSecret, `{"alg":"HS256","typ":"JWT"}`, `{"sub":"\ud800","room":"r","exp":1900000000}`))
	f.Add(forge(otherSecret, `{"alg":"HS256"}`, `{"sub":"u","room":"r","exp":1900000000}`))
	f.Add(forge(testSecret, `{"alg":"HS256"}`, `{"sub":"node:b","room":"r","exp":1900000000,"jti":"0123456789abcdef"}`))
	f.Add(forge(testSecret, `{"alg":"HS256"}`, `{"sub":"u","room":"r","exp":1900000000,"jti":["x"]}`))

	f.Fuzz(func(t *testing.T, token string) {
		check(t, s, token)
		// Fuzzed bytes almost never carry a good signature; re-sign the
		// first two parts so the header and payload parsers get fuzzed too.
		if i := strings.LastIndexByte(token, '.'); i >= 0 {
			check(t, s, token[:i]+"."+base64.RawURLEncoding.EncodeToString(hs256(testSecret, token[:i])))
		}
	})
}

// check asserts that Verify classifies its error, and that a token it accepts
// verifies again to the same claims, as does a fresh token signed from them.
func check(t *testing.T, s *Signer, token string) {
	c, err := s.Verify(token, testNow)
	if err != nil {
		if m := matchedSentinels(err); len(m) != 1 {
			t.Fatalf("Verify(%q) error %q matches %d sentinels, want 1", token, err, len(m))
		}
		return
	}
	again, err := s.Verify(token, testNow)
	if err != nil || again != c {
		t.Fatalf("re-Verify(%q) = %+v, %v; first %+v", token, again, err, c)
	}
	resigned, err := s.Sign(c)
	if err != nil {
		t.Fatalf("Sign(%+v) of accepted claims: %v", c, err)
	}
	c2, err := s.Verify(resigned, testNow)
	if err != nil || !claimsEqual(c, c2) {
		t.Fatalf("Verify(Sign(%+v)) = %+v, %v", c, c2, err)
	}
}

func BenchmarkVerify(b *testing.B) {
	s := newTestSigner(b, testSecret)
	tok := mustSign(b, s, validClaims())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(tok, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s := newTestSigner(b, testSecret)
	c := validClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

func splitToken(t *testing.T, tok string) (h, p, sig string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", tok, len(parts))
	}
	return parts[0], parts[1], parts[2]
}

func b64Part(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func forgeHS512(secret []byte, header, payload string) string {
	input := b64Part(header) + "." + b64Part(payload)
	h := hmac.New(sha512.New, secret)
	h.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// nonCanonical returns another base64url character that decodes to the same
// bits as c when it is the last character of a 32-byte value (43 characters,
// the last carrying 4 bits and 2 padding bits).
func nonCanonical(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i|1])
}
