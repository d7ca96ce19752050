package hls

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Signed URLs: a request carries exp (unix seconds) and sig, the hex
// HMAC-SHA256 under hls.signing_secret of "/hls/{room}/" followed by exp.
// The signature covers the room's whole directory, so the query an app
// signs for index.m3u8 also opens every playlist, part and segment it
// lists (the muxer repeats the query in the URIs it writes), and a CDN
// passes it through untouched.

// Sign returns the query ("exp=...&sig=...") that opens room's HLS until
// exp.
func Sign(secret, room string, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return "exp=" + e + "&sig=" + hex.EncodeToString(mac(secret, room, e))
}

func mac(secret, room, exp string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("/hls/" + room + "/" + exp))
	return m.Sum(nil)
}

// checkSignature checks q's exp and sig for room at now, in constant time
// over the signature.
func checkSignature(secret, room string, q url.Values, now time.Time) *Error {
	exp, sig := q.Get("exp"), q.Get("sig")
	if exp == "" || sig == "" {
		return newError(http.StatusForbidden, CodeBadSignature, "this node serves signed HLS URLs only: exp and sig are required")
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || e < 0 || len(exp) > 19 {
		return newError(http.StatusForbidden, CodeBadSignature, "exp must be unix seconds")
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return newError(http.StatusForbidden, CodeBadSignature, "sig must be 64 hex digits")
	}
	if !hmac.Equal(got, mac(secret, room, exp)) {
		return newError(http.StatusForbidden, CodeBadSignature, "the signature does not match this room and expiry")
	}
	if now.Unix() > e {
		return newError(http.StatusForbidden, CodeExpired, "the signed URL expired at %s", time.Unix(e, 0).UTC().Format(time.RFC3339))
	}
	return nil
}
