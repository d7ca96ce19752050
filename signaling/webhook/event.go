package webhook

import (
	"encoding/json"
	"fmt"
	"time"
)

// The event types (config.WebhookEvents lists the same).
const (
	RoomStarted        = "room_started"
	RoomFinished       = "room_finished"
	BroadcastStarted   = "broadcast_started"
	BroadcastEnded     = "broadcast_ended"
	ParticipantJoined  = "participant_joined"
	ParticipantLeft    = "participant_left"
	TrackPublished     = "track_published"
	TrackUnpublished   = "track_unpublished"
	ViewerCount        = "viewer_count"
	ParticipantRemoved = "participant_removed"
	TrackMuted         = "track_muted"
	NodeDraining       = "node_draining"
	NodeLost           = "node_lost"
)

// Event is the body of one delivery (docs/webhooks.md).
type Event struct {
	// ID is unique per event, the same on every retry: the receiver's
	// idempotency key. It is also the webhook-id header.
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Room is the room's name; "" for node events.
	Room string `json:"room,omitempty"`
	// Node and Region name the node the event happened on (for node_lost,
	// the node that noticed).
	Node   string `json:"node"`
	Region string `json:"region"`
	// Seq numbers a room's events 1, 2, 3... in the order they were
	// queued, cluster-wide (node events: per node).
	Seq int64 `json:"seq"`

	Participant *Participant `json:"participant,omitempty"`
	Track       *Track       `json:"track,omitempty"`
	// Viewers is the room's audience, cluster-wide (viewer_count).
	Viewers *int `json:"viewers,omitempty"`
	// Reason says why: a removal's reason, "node_lost" for what a lost
	// node's end implies.
	Reason string `json:"reason,omitempty"`
	// Muted is a track_muted's new state.
	Muted *bool `json:"muted,omitempty"`
	// LostNode is the node a node_lost is about.
	LostNode string `json:"lost_node,omitempty"`
}

// Participant is a participant in an event.
type Participant struct {
	ID       string `json:"id"`
	Identity string `json:"identity"`
	Name     string `json:"name,omitempty"`
	// Role is publisher (its token may publish) or viewer.
	Role string `json:"role"`
}

// Track is a track in an event.
type Track struct {
	ID            string `json:"id"`
	ParticipantID string `json:"participant_id,omitempty"`
	Kind          string `json:"kind,omitempty"`
	Source        string `json:"source,omitempty"`
	Codec         string `json:"codec,omitempty"`
}

// body is what is delivered for e: the event with its sequence number
// (and At), the same bytes on every attempt.
func (e Delivery) body() ([]byte, Event, error) {
	var ev Event
	if err := json.Unmarshal(e.Event, &ev); err != nil {
		return nil, ev, fmt.Errorf("webhook: a queued event does not decode: %w", err)
	}
	ev.Seq = e.Seq
	if e.At > 0 {
		ev.Time = time.UnixMilli(e.At).UTC()
	}
	b, err := json.Marshal(ev)
	return b, ev, err
}

// encode is ev as a queue holds it.
func encode(ev Event) []byte {
	b, _ := json.Marshal(ev) // an Event always encodes
	return b
}
