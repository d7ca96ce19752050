package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST API scheme is HMAC-SHA1, as coturn checks it
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// maxIdentityLen bounds the identity part of a username: the longest
// identity a token may carry (128 characters of up to 4 bytes).
const maxIdentityLen = 512

// Errors of ParseUsername.
var (
	// ErrMalformedUsername is a username that is not "expiry:identity".
	ErrMalformedUsername = errors.New("turn: username is not expiry:identity")
)

// ParseUsername splits a TURN REST API username, "expiry:identity" (the
// expiry in Unix seconds), into its parts. The identity may itself contain
// colons; it must not be empty.
func ParseUsername(username string) (expiry time.Time, identity string, err error) {
	ts, identity, ok := strings.Cut(username, ":")
	if !ok || ts == "" || len(ts) > 12 || identity == "" || len(identity) > maxIdentityLen {
		return time.Time{}, "", ErrMalformedUsername
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, "", ErrMalformedUsername
	}
	return time.Unix(secs, 0), identity, nil
}

// Password is the password of username under secret in the use-auth-secret
// scheme: base64(HMAC-SHA1(secret, username)).
func Password(secret, username string) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
