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

// toWire maps any error from the layers below to its wire error. This is the
// one place where internal errors meet protocol codes.
func toWire(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	code := CodeInternal
	switch {
	case errors.Is(err, auth.ErrMalformed), errors.Is(err, auth.ErrAlgorithm), errors.Is(err, auth.ErrSignature),
		errors.Is(err, auth.ErrExpired), errors.Is(err, auth.ErrNotYetValid), errors.Is(err, auth.ErrClaims):
		code = CodeUnauthorized
	case errors.Is(err, room.ErrForbidden):
		code = CodeForbidden
	case errors.Is(err, sfu.ErrInvalidSDP):
		code = CodeInvalidSDP
	case errors.Is(err, sfu.ErrUnsupportedCodec):
		code = CodeUnsupportedCodec
	case errors.Is(err, room.ErrUnknownTrack):
		code = CodeUnknownTrack
	case errors.Is(err, room.ErrTooManyTracks):
		code = CodeTooManyTracks
	case errors.Is(err, room.ErrRoomFull):
		code = CodeRoomFull
	case errors.Is(err, room.ErrDraining):
		code = CodeShuttingDown
	case errors.Is(err, room.ErrNoTracks):
		code = CodeNotFound
	case errors.Is(err, room.ErrMediaFailed):
		code = CodeMediaFailed
	case errors.Is(err, sfu.ErrInvalidCandidate), errors.Is(err, sfu.ErrNoOffer), errors.Is(err, room.ErrNoSubscription):
		code = CodeBadRequest
	}
	return newError(code, err.Error())
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
