package auth

import "errors"

// Every error returned by Sign and Verify wraps exactly one of these
// sentinels, so callers classify failures with errors.Is; the message of the
// wrapping error says why.
var (
	// ErrMalformed means the token is not three base64url parts holding a
	// JSON object header and payload with members of the expected types, or
	// that it is longer than 4096 bytes.
	ErrMalformed = errors.New("auth: malformed token")
	// ErrAlgorithm means the header asks for something other than HS256
	// (including "none"), has a "typ" other than JWT, or lists critical
	// extensions ("crit") this package does not implement.
	ErrAlgorithm = errors.New("auth: unsupported algorithm")
	// ErrSignature means the signature does not match the header and payload
	// under the signer's secret.
	ErrSignature = errors.New("auth: bad signature")
	// ErrExpired means the token's "exp" has passed, allowing for clock skew.
	ErrExpired = errors.New("auth: token expired")
	// ErrNotYetValid means the token's "nbf" is still ahead, allowing for
	// clock skew.
	ErrNotYetValid = errors.New("auth: token not yet valid")
	// ErrClaims means the claims break the rules in Claims: missing sub or
	// exp, an empty room without the admin grant, an invalid room name,
	// over-long fields or dates out of range.
	ErrClaims = errors.New("auth: invalid claims")
)
