// Package auth issues and checks the access tokens that admit clients to live
// rooms.
//
// A token is a JSON Web Token (RFC 7519) in JWS compact form (RFC 7515),
// signed with HMAC-SHA256 ("HS256") under a secret shared by the services that
// mint tokens and the signalling server that checks them. Its payload carries
// the participant's identity ("sub"), an optional display name ("name"), the
// room it admits to ("room"), what it allows there ("grants"), and its
// validity window ("exp", "nbf", "iat") and, optionally, a unique id ("jti",
// a string of at most 128 characters; the package reads it, the caller
// decides what a second use means). Any HS256 implementation can mint
// tokens that [Signer.Verify] accepts.
//
// The package owns the token format and its checks: parsing, the signature,
// the validity window (with a few seconds of clock skew) and the claim rules
// in [Claims]. It does not know about rooms, participants or the wire
// protocol; signalling maps the sentinel errors (ErrMalformed, ErrSignature,
// ...) to wire codes in one place.
//
// Signing, the signature check, the algorithm allow-list, strict base64url
// and the exp/nbf window are github.com/golang-jwt/jwt/v5. Around it this
// package keeps the checks that library does not make (see Signer.Verify):
// a size bound, one spelling per token, a header and payload read member by
// member with exact names, no duplicates and the expected types.
//
// Verify reads untrusted input: it never panics, bounds the token size, checks
// the signature before interpreting the payload, and rejects every algorithm
// but HS256 (including "none"). Registered claims other than sub, exp, nbf,
// iat and jti (iss, aud) and unknown members are ignored.
package auth
