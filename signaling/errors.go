package signaling

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/halobuzz/live/room"
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
	CodeTooManyCandidates  = "too_many_candidates"
	CodeTokenExpired       = "token_expired"
	CodeClusterUnavailable = "cluster_unavailable"
	CodeTokenReplayed      = "token_replayed"
	CodeTooManyRelays      = "too_many_relays"
	CodeNodeFull           = "node_full"
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
	CodeRoomFull: true, CodeRateLimited: true, CodeShuttingDown: true, CodeTokenExpired: true,
}

// wireCodes maps the errors of the layers below to wire codes and short
// fixed messages: the one place where internal errors meet protocol codes.
// The text of the error itself (which may quote Pion, the JSON decoder or a
// file path) never reaches the client; the caller logs it. The first match
// wins.
var wireCodes = []struct {
	err  error
	code string
	msg  string
}{
	{auth.ErrExpired, CodeUnauthorized, "the token has expired"},
	{auth.ErrNotYetValid, CodeUnauthorized, "the token is not valid yet"},
	{auth.ErrMalformed, CodeUnauthorized, "the token is not valid"},
	{auth.ErrAlgorithm, CodeUnauthorized, "the token is not valid"},
	{auth.ErrSignature, CodeUnauthorized, "the token is not valid"},
	{auth.ErrClaims, CodeUnauthorized, "the token is not valid"},
	{room.ErrForbidden, CodeForbidden, "the token does not grant this"},
	{room.ErrInvalidSDP, CodeInvalidSDP, "the SDP was refused (it must parse, stay within the m-line and size limits, " +
		"and carry RFC 8839 ICE credentials and a DTLS fingerprint)"},
	{room.ErrUnsupportedCodec, CodeUnsupportedCodec, "offer VP8, VP9, H264, AV1 or Opus"},
	{room.ErrUnknownTrack, CodeUnknownTrack, "no such track in the room"},
	{room.ErrTooManyTracks, CodeTooManyTracks, "more tracks than a participant may publish"},
	{room.ErrRoomFull, CodeRoomFull, "the room is full"},
	{room.ErrDraining, CodeShuttingDown, "this node is shutting down"},
	{room.ErrNodeFull, CodeNodeFull, "this node is full; retry in a few seconds"},
	{room.ErrNoTracks, CodeNotFound, "nothing is published in the room"},
	{room.ErrMediaFailed, CodeMediaFailed, "the media connection failed"},
	{room.ErrClusterUnavailable, CodeClusterUnavailable, "the cluster's shared state is unreachable; retry in a few seconds"},
	{room.ErrRelayUnavailable, CodeClusterUnavailable, "the node that has this track cannot be reached now; retry in a few seconds"},
	{room.ErrTooManyCandidates, CodeTooManyCandidates, fmt.Sprintf("at most %d candidates are kept before the offer or answer", room.MaxPendingCandidates)},
	{room.ErrInvalidCandidate, CodeBadRequest, "the ICE candidate was refused"},
	{room.ErrNoOffer, CodeBadRequest, "no offer is waiting for an answer"},
	{room.ErrNoSubscription, CodeBadRequest, "there is no subscriber connection"},
	{room.ErrLeft, CodeNotJoined, "the participant has left"},
	{room.ErrMediaClosed, CodeMediaFailed, "the media connection is closed"},
	{room.ErrRoomRateLimited, CodeRoomRateLimited, "the room's chat and reaction rate is exceeded: retry later"},
}

// internalMessage is all a client learns of an unexpected error.
const internalMessage = "internal error"

// toWire maps any error to its wire error: our own *Error as it is, a known
// error of the layers below to its code and fixed message, anything else to
// internal. Callers log err itself (logWire).
func toWire(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	for _, w := range wireCodes {
		if errors.Is(err, w.err) {
			return newError(w.code, w.msg)
		}
	}
	return newError(CodeInternal, internalMessage)
}

// logWire logs the detail behind a wire error sent to a client: an internal
// error at error level (a bug or an outage), a client's mistake at debug.
func logWire(log *slog.Logger, msg string, err error, w *Error, attrs ...any) {
	attrs = append(attrs, "code", w.Code, "err", err)
	if w.Code == CodeInternal {
		log.Error(msg, attrs...)
		return
	}
	log.Debug(msg, attrs...)
}

// httpStatus is the HTTP status of a wire code (WHIP/WHEP, RFC 9725 section 4).
func httpStatus(code string) int {
	switch code {
	case CodeBadJSON, CodeBadRequest, CodeInvalidSDP, CodeUnknownType, CodeTooManyCandidates:
		return http.StatusBadRequest
	case CodeUnauthorized, CodeTokenExpired, CodeTokenReplayed:
		return http.StatusUnauthorized
	case CodeForbidden, CodeRoomMismatch, CodeBanned:
		return http.StatusForbidden
	case CodeNotFound, CodeUnknownTrack:
		return http.StatusNotFound
	case CodeRoomFull, CodeTooManyTracks:
		return http.StatusConflict
	case CodeUnsupportedCodec:
		return http.StatusUnprocessableEntity
	case CodeMessageTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited, CodeTooManyRelays:
		return http.StatusTooManyRequests
	case CodeShuttingDown, CodeClusterUnavailable, CodeNodeFull:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
