package signaling

import (
	"errors"
	"net/http"

	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/sfu"
	"github.com/halobuzz/live/signaling/auth"
)

// Wire error codes (docs/protocol.md).
const (
	CodeBadJSON            = "bad_json"
	CodeUnsupportedVersion = "unsupported_version"
	CodeUnknownType        = "unknown_type"
	CodeBadRequest         = "bad_request"
	CodeMessageTooLarge    = "message_too_large"
	CodeNotJoined          = "not_joined"
	CodeAlreadyJoined      = "already_joined"
	CodeUnauthorized       = "unauthorized"
	CodeRoomMismatch       = "room_mismatch"
	CodeForbidden          = "forbidden"
	CodeInvalidSDP         = "invalid_sdp"
	CodeUnsupportedCodec   = "unsupported_codec"
	CodeUnknownTrack       = "unknown_track"
	CodeTooManyTracks      = "too_many_tracks"
	CodeRoomFull           = "room_full"
	CodeRateLimited        = "rate_limited"
	CodeRoomRateLimited    = "room_rate_limited"
	CodeShuttingDown       = "server_shutting_down"
	CodeNotFound           = "not_found"
	CodeMediaFailed        = "media_failed"
	CodeInternal           = "internal"
)

// Error is an error with its wire code. Fatal errors end the session.
type Error struct {
	Code    string
	Message string
	Fatal   bool
}

// Error formats the error as "code: message".
func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(code, msg string) *Error {
	return &Error{Code: code, Message: msg, Fatal: fatalCodes[code]}
}

var fatalCodes = map[string]bool{
	CodeMessageTooLarge: true, CodeUnauthorized: true, CodeRoomMismatch: true,
	CodeRoomFull: true, CodeRateLimited: true, CodeShuttingDown: true,
}

// wireCodes maps the errors of the layers below to wire codes: the one place
// where internal errors meet protocol codes. The first match wins.
var wireCodes = []struct {
	err  error
	code string
}{
	{auth.ErrMalformed, CodeUnauthorized},
	{auth.ErrAlgorithm, CodeUnauthorized},
	{auth.ErrSignature, CodeUnauthorized},
	{auth.ErrExpired, CodeUnauthorized},
	{auth.ErrNotYetValid, CodeUnauthorized},
	{auth.ErrClaims, CodeUnauthorized},
	{room.ErrForbidden, CodeForbidden},
	{sfu.ErrInvalidSDP, CodeInvalidSDP},
	{sfu.ErrUnsupportedCodec, CodeUnsupportedCodec},
	{room.ErrUnknownTrack, CodeUnknownTrack},
	{room.ErrTooManyTracks, CodeTooManyTracks},
	{room.ErrRoomFull, CodeRoomFull},
	{room.ErrDraining, CodeShuttingDown},
	{room.ErrNoTracks, CodeNotFound},
	{room.ErrMediaFailed, CodeMediaFailed},
	{sfu.ErrInvalidCandidate, CodeBadRequest},
	{sfu.ErrNoOffer, CodeBadRequest},
	{room.ErrNoSubscription, CodeBadRequest},
	{room.ErrRoomRateLimited, CodeRoomRateLimited},
}

// toWire maps any error to its wire error; unknown errors are internal.
func toWire(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	for _, w := range wireCodes {
		if errors.Is(err, w.err) {
			return newError(w.code, err.Error())
		}
	}
	return newError(CodeInternal, err.Error())
}

// httpStatus is the HTTP status of a wire code (WHIP/WHEP, RFC 9725 section 4).
func httpStatus(code string) int {
	switch code {
	case CodeBadJSON, CodeBadRequest, CodeInvalidSDP, CodeUnknownType:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden, CodeRoomMismatch:
		return http.StatusForbidden
	case CodeNotFound, CodeUnknownTrack:
		return http.StatusNotFound
	case CodeRoomFull, CodeTooManyTracks:
		return http.StatusConflict
	case CodeUnsupportedCodec:
		return http.StatusUnprocessableEntity
	case CodeMessageTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeShuttingDown:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
