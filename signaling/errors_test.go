package signaling

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/signaling/auth"
)

// A client learns the code and a short fixed message, never the text of
// the error behind it (Pion's, the decoder's, a path, an address).
func TestToWire_NeverShowsInternalText(t *testing.T) {
	const inside = "InvalidModificationError: have-remote-offer /etc/halo 10.0.0.7:6379"
	for _, err := range []error{
		fmt.Errorf("%w: %s", room.ErrInvalidSDP, inside),
		fmt.Errorf("%w: %s", room.ErrInvalidCandidate, inside),
		fmt.Errorf("%w: %s", room.ErrTooManyCandidates, inside),
		fmt.Errorf("%w: %s", auth.ErrSignature, inside),
		fmt.Errorf("%w: %s", room.ErrForbidden, inside),
		fmt.Errorf("%w: %s", room.ErrLeft, inside),
		fmt.Errorf("%w: redis store: room r: dial tcp %s", room.ErrClusterUnavailable, inside),
		errors.New(inside),
	} {
		w := toWire(err)
		if w.Message == "" || strings.Contains(w.Message, "10.0.0.7") || strings.Contains(w.Message, "InvalidModification") ||
			strings.Contains(w.Message, "sfu:") || strings.Contains(w.Message, "room:") || strings.Contains(w.Message, "auth:") {
			t.Errorf("%v -> %q: %q", err, w.Code, w.Message)
		}
	}
	if w := toWire(errors.New(inside)); w.Code != CodeInternal || w.Message != internalMessage {
		t.Errorf("unknown error -> %+v", w)
	}
	if w := toWire(fmt.Errorf("%w: redis down", room.ErrClusterUnavailable)); w.Code != CodeClusterUnavailable || w.Fatal || httpStatus(w.Code) != 503 {
		t.Errorf("cluster unavailable -> %+v, want a retryable (non-fatal, 503) %s", w, CodeClusterUnavailable)
	}
	if w := toWire(fmt.Errorf("%w: at most 64", room.ErrTooManyCandidates)); w.Code != CodeTooManyCandidates || w.Fatal {
		t.Errorf("too many candidates -> %+v, want a non-fatal %s", w, CodeTooManyCandidates)
	}
}

// Decoding errors name the protocol's field, not the Go struct behind it.
func TestDecodeData_NamesTheFieldNotTheGoType(t *testing.T) {
	env, werr := decodeEnvelope([]byte(`{"type":"join","data":{"token":42}}`))
	if werr != nil {
		t.Fatal(werr)
	}
	e := decodeData(env, &joinData{})
	if e == nil || e.Code != CodeBadRequest || e.Message != `data: field "token" must be a string` {
		t.Fatalf("got %+v", e)
	}
	if _, e := decodeEnvelope([]byte(`{"type": 7}`)); e == nil || e.Message != `field "type" must be a string` {
		t.Fatalf("type of the wrong type: %+v", e)
	}
	if _, e := decodeEnvelope([]byte(`{"type": "join",`)); e == nil || e.Code != CodeBadJSON || strings.Contains(e.Message, "unexpected") {
		t.Fatalf("truncated frame: %+v", e)
	}
}
