package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// b64 is base64url without padding, as JWS requires. Strict decoding rejects
// non-zero trailing bits, so each byte string has exactly one encoding and a
// signature cannot be re-spelled into a second valid token.
var b64 = base64.RawURLEncoding.Strict()

// decodeSegment decodes one dot-separated part of a token.
func decodeSegment(part, s string) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64url: %v", ErrMalformed, part, err)
	}
	return b, nil
}

// object is a decoded JSON object: member names (exact, after unescaping)
// to their raw values.
type object map[string]json.RawMessage

// decodeObject decodes a JSON object one member at a time. Unlike
// json.Unmarshal into a struct it matches names exactly (not
// case-insensitively) and rejects duplicate names, so no two JWT libraries
// can read different claims out of the same signed bytes.
func decodeObject(data []byte) (object, error) {
	obj, err := decodeMembers(data)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // EOF before the object was complete
	}
	return obj, err
}

func decodeMembers(data []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	obj := make(object)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("member name is not a string")
		}
		if _, dup := obj[name]; dup {
			return nil, fmt.Errorf("duplicate member %q", clip(name))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		obj[name] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return obj, nil
}

// value returns the raw value of member name, or nil if it is absent or null.
func (o object) value(name string) []byte {
	raw := bytes.TrimSpace(o[name])
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// str returns member name as a string, and whether it is present.
func (o object) str(part, name string) (string, bool, error) {
	raw := o.value(name)
	if raw == nil {
		return "", false, nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false, wrongType(part, name, "string")
	}
	return s, true, nil
}

// boolean returns member name as a bool; absent is false.
func (o object) boolean(part, name string) (bool, error) {
	switch raw := o.value(name); string(raw) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, wrongType(part, name, "boolean")
	}
}

// date returns member name as a NumericDate (RFC 7519 section 2); absent is
// the zero time. Fractional seconds are accepted, as the RFC allows, and
// rounded down.
func (o object) date(part, name string) (time.Time, error) {
	raw := o.value(name)
	if raw == nil {
		return time.Time{}, nil
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return time.Time{}, wrongType(part, name, "number")
	}
	// raw is a JSON number the decoder has already validated.
	sec, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(raw), 64)
		if ferr != nil && !errors.Is(ferr, strconv.ErrRange) {
			return time.Time{}, wrongType(part, name, "number")
		}
		if !(f >= minDate && f < maxDate+1) { // also false for NaN
			return time.Time{}, fmt.Errorf("%w: %s %.6g is outside years 1970..9999", ErrClaims, name, f)
		}
		sec = int64(math.Floor(f))
	}
	if sec < minDate || sec > maxDate {
		return time.Time{}, fmt.Errorf("%w: %s %d is outside years 1970..9999", ErrClaims, name, sec)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func wrongType(part, name, want string) error {
	return fmt.Errorf("%w: %s member %q has the wrong type, want %s", ErrMalformed, part, name, want)
}

// checkHeader accepts only {"alg":"HS256"} with an optional "typ":"JWT".
func checkHeader(data []byte) error {
	h, err := decodeObject(data)
	if err != nil {
		return fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	alg, ok, err := h.str("header", "alg")
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: header has no alg", ErrAlgorithm)
	case alg != "HS256":
		return fmt.Errorf("%w: alg %q, want HS256", ErrAlgorithm, clip(alg))
	}
	typ, ok, err := h.str("header", "typ")
	switch {
	case err != nil:
		return err
	case ok && typ != "JWT":
		return fmt.Errorf("%w: typ %q, want JWT", ErrAlgorithm, clip(typ))
	}
	// RFC 7515 section 4.1.11: extensions listed in crit must be understood
	// or the token rejected. We implement none (e.g. RFC 7797 "b64", which
	// changes what is signed).
	if _, ok := h["crit"]; ok {
		return fmt.Errorf("%w: critical header extensions are not supported", ErrAlgorithm)
	}
	return nil
}

// parsePayload reads the claims out of a verified payload. It checks types
// only; Claims.validate checks the rules.
func parsePayload(data []byte) (Claims, error) {
	p, err := decodeObject(data)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	var c Claims
	if c.Identity, _, err = p.str("payload", "sub"); err != nil {
		return Claims{}, err
	}
	if c.Name, _, err = p.str("payload", "name"); err != nil {
		return Claims{}, err
	}
	if c.Room, _, err = p.str("payload", "room"); err != nil {
		return Claims{}, err
	}
	if c.ID, _, err = p.str("payload", "jti"); err != nil {
		return Claims{}, err
	}
	if c.Grants, err = parseGrants(p.value("grants")); err != nil {
		return Claims{}, err
	}
	if c.ExpiresAt, err = p.date("payload", "exp"); err != nil {
		return Claims{}, err
	}
	if c.NotBefore, err = p.date("payload", "nbf"); err != nil {
		return Claims{}, err
	}
	if c.IssuedAt, err = p.date("payload", "iat"); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// parseGrants reads the "grants" object; absent means no grants.
func parseGrants(raw []byte) (Grants, error) {
	var g Grants
	if raw == nil {
		return g, nil
	}
	if raw[0] != '{' {
		return g, wrongType("payload", "grants", "object")
	}
	o, err := decodeObject(raw)
	if err != nil {
		return g, fmt.Errorf("%w: grants: %v", ErrMalformed, err)
	}
	if g.Publish, err = o.boolean("grants", "publish"); err != nil {
		return g, err
	}
	if g.Subscribe, err = o.boolean("grants", "subscribe"); err != nil {
		return g, err
	}
	if g.Admin, err = o.boolean("grants", "admin"); err != nil {
		return g, err
	}
	if g.Moderate, err = o.boolean("grants", "moderate"); err != nil {
		return g, err
	}
	return g, nil
}
