package signaling

import (
	"errors"
	"time"

	"github.com/halobuzz/live/room"
)

// What moderation looks like on the wire (docs/protocol.md): the code of a
// banned identity, and the events a removed, messaged or promoted client
// gets.

// CodeBanned refuses a banned identity (or a broadcast in a room ended
// with a ban), on every node, whatever token it presents.
const CodeBanned = "banned"

func init() {
	// Kept beside the moderation's own types; the table is errors.go's.
	// banned is not fatal: a viewer of a room that refuses broadcasts
	// keeps watching, and a refused join leaves the socket unjoined.
	wireCodes = append(wireCodes,
		struct {
			err  error
			code string
			msg  string
		}{room.ErrBanned, CodeBanned, "a moderator banned this identity from the room, or the room from broadcasting, for now"},
		struct {
			err  error
			code string
			msg  string
		}{room.ErrNoParticipant, CodeNotFound, "nobody with this identity is in the room"},
	)
}

// Server message bodies of moderation.
type (
	removedData struct {
		Reason    string     `json:"reason"`
		RoomEnded bool       `json:"room_ended"`
		BanUntil  *time.Time `json:"ban_until,omitempty"`
	}
	systemMessageData struct {
		Text string `json:"text"`
	}
	permissionsData struct {
		Grants grantsJSON `json:"grants"`
	}
)

// moderationMessage is eventMessage for the events of moderation ("" for
// any other event).
func moderationMessage(ev room.Event) (string, any) {
	switch ev := ev.(type) {
	case room.SystemMessage:
		return "system_message", systemMessageData{Text: ev.Text}
	case room.PermissionsChanged:
		return "permissions_changed", permissionsData{Grants: grantsJSON{Publish: ev.Publish, Subscribe: ev.Subscribe}}
	case room.TrackMuted:
		return "track_muted", trackMutedData{TrackID: ev.TrackID, ParticipantID: ev.ParticipantID, Muted: ev.Muted}
	}
	return "", nil
}

// removedFrame is the removed message for a session a moderator ended, or
// nil when reason is not a removal.
func removedFrame(reason error) []byte {
	var rm *room.Removal
	if !errors.As(reason, &rm) {
		return nil
	}
	d := removedData{Reason: rm.Reason, RoomEnded: rm.RoomEnded}
	if !rm.Until.IsZero() {
		t := rm.Until.UTC()
		d.BanUntil = &t
	}
	return encode("removed", 0, d)
}
