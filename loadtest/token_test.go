package loadtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMintToken_IsAVerifiableHS256JWT(t *testing.T) {
	const secret = "test-secret-not-a-real-one"
	iat := time.Unix(1_700_000_000, 0)
	tok, err := MintToken(secret, TokenClaims{
		Identity: "alice",
		Name:     "Alice",
		Room:     "demo",
		Grants:   Grants{Publish: true, Subscribe: true},
		IssuedAt: iat,
		TTL:      time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		t.Fatalf("signature does not verify (decode err %v)", err)
	}

	var header map[string]string
	decodePart(t, parts[0], &header)
	if header["alg"] != "HS256" || header["typ"] != "JWT" {
		t.Fatalf("header %v", header)
	}
	var claims struct {
		Sub    string          `json:"sub"`
		Name   string          `json:"name"`
		Room   string          `json:"room"`
		Grants map[string]bool `json:"grants"`
		Exp    int64           `json:"exp"`
		Iat    int64           `json:"iat"`
	}
	decodePart(t, parts[1], &claims)
	if claims.Sub != "alice" || claims.Name != "Alice" || claims.Room != "demo" ||
		!claims.Grants["publish"] || !claims.Grants["subscribe"] ||
		claims.Iat != iat.Unix() || claims.Exp != iat.Add(time.Hour).Unix() {
		t.Fatalf("claims %+v", claims)
	}
}

func decodePart(t *testing.T, part string, dst any) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatalf("part is not base64url without padding: %v", err)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		t.Fatal(err)
	}
}

func TestMintToken_RefusesMissingSecretOrIdentity(t *testing.T) {
	if _, err := MintToken("", TokenClaims{Identity: "a"}); err == nil {
		t.Fatal("empty secret accepted")
	}
	if _, err := MintToken("s", TokenClaims{}); err == nil {
		t.Fatal("empty identity accepted")
	}
}

func TestTokenMinter_GrantsPublishOnlyToPublishers(t *testing.T) {
	mint := TokenMinter("s3cret", "demo", time.Minute)
	for _, publish := range []bool{true, false} {
		tok, err := mint("bob", publish)
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Sub    string `json:"sub"`
			Room   string `json:"room"`
			Grants Grants `json:"grants"`
			Exp    int64  `json:"exp"`
			Iat    int64  `json:"iat"`
		}
		decodePart(t, strings.Split(tok, ".")[1], &claims)
		if claims.Sub != "bob" || claims.Room != "demo" || claims.Grants.Publish != publish ||
			!claims.Grants.Subscribe || claims.Exp-claims.Iat != 60 {
			t.Fatalf("publish=%v: claims %+v", publish, claims)
		}
	}
}
