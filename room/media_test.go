package room

import (
	"errors"
	"fmt"
	"testing"

	"github.com/halobuzz/live/sfu"
)

// The media plane's errors reach signalling under room's names: an error
// the media plane returned, wrapped on its way up, is the room error
// signalling maps to a wire code.
func TestMediaErrors_AreTheMediaPlanesOwn(t *testing.T) {
	for roomErr, mediaErr := range map[error]error{
		ErrInvalidSDP:        sfu.ErrInvalidSDP,
		ErrUnsupportedCodec:  sfu.ErrUnsupportedCodec,
		ErrInvalidCandidate:  sfu.ErrInvalidCandidate,
		ErrTooManyCandidates: sfu.ErrTooManyCandidates,
		ErrNoOffer:           sfu.ErrNoOffer,
		ErrMediaClosed:       sfu.ErrClosed,
	} {
		if err := fmt.Errorf("publish: %w", mediaErr); !errors.Is(err, roomErr) {
			t.Errorf("%v from the media plane is not %v", mediaErr, roomErr)
		}
	}
	for _, name := range []string{"low", "medium", "High"} {
		if _, ok := ParseLayer(name); !ok {
			t.Errorf("ParseLayer(%q) refused a layer name", name)
		}
	}
	if _, ok := ParseLayer("bogus"); ok {
		t.Error(`ParseLayer("bogus") accepted an unknown layer name`)
	}
}
