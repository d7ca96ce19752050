package loadtest

import "github.com/pion/webrtc/v4"

// The bodies of the protocol messages this client sends and reads
// (docs/protocol.md). Unknown fields are ignored on decode.

// Message types of the signalling protocol.
const (
	TypeJoin              = "join"
	TypeJoined            = "joined"
	TypePublish           = "publish"
	TypeAnswer            = "answer"
	TypeOffer             = "offer"
	TypeSubscribe         = "subscribe"
	TypeSubscribed        = "subscribed"
	TypeUnsubscribe       = "unsubscribe"
	TypeUnsubscribed      = "unsubscribed"
	TypeTrickle           = "trickle"
	TypeChat              = "chat"
	TypeReaction          = "reaction"
	TypeLeave             = "leave"
	TypeError             = "error"
	TypeParticipantJoined = "participant_joined"
	TypeParticipantLeft   = "participant_left"
	TypeTrackPublished    = "track_published"
	TypeTrackUnpublished  = "track_unpublished"
	TypeViewerCount       = "viewer_count"
	TypeTokenExpiring     = "token_expiring"
	TypeRefresh           = "refresh"
	TypeRefreshed         = "refreshed"
	TypeLayers            = "layers"
	TypeRedirect          = "redirect"
)

// TokenExpiring is the data of a token_expiring event: the session ends at
// Exp (Unix seconds) unless the client sends refresh with a fresh token.
type TokenExpiring struct {
	Exp         int64 `json:"exp"`
	SecondsLeft int64 `json:"seconds_left"`
}

// RefreshRequest is the data of a refresh message.
type RefreshRequest struct {
	Token string `json:"token"`
}

// Refreshed is the reply to refresh: the new expiry and the grants that
// apply from now on.
type Refreshed struct {
	Exp    int64  `json:"exp"`
	Grants Grants `json:"grants"`
}

// Trickle targets: which of the participant's two peer connections a
// candidate belongs to.
const (
	TargetPublisher  = "publisher"
	TargetSubscriber = "subscriber"
)

// JoinRequest is the data of a join message.
type JoinRequest struct {
	Token         string `json:"token"`
	Room          string `json:"room,omitempty"`
	Name          string `json:"name,omitempty"`
	AutoSubscribe *bool  `json:"auto_subscribe,omitempty"`
}

// Grants are the rights a token gives, as echoed in joined and carried in
// access tokens.
type Grants struct {
	Publish   bool `json:"publish"`
	Subscribe bool `json:"subscribe"`
	Admin     bool `json:"admin,omitempty"`
}

// Participant is a participant as the server describes it.
type Participant struct {
	ID        string `json:"id"`
	Identity  string `json:"identity"`
	Name      string `json:"name"`
	Publisher bool   `json:"publisher"`
}

// Track is a published track as the server describes it.
type Track struct {
	ID            string `json:"id"`
	ParticipantID string `json:"participant_id"`
	Kind          string `json:"kind"`
	Source        string `json:"source"`
	Name          string `json:"name"`
	Mid           string `json:"mid"`
	Codec         string `json:"codec"`
}

// Joined is the data of the joined reply. Participants lists the room's
// publishers only (participants that published a track); the audience is
// ViewerCount, and later viewer_count events.
type Joined struct {
	ParticipantID string        `json:"participant_id"`
	Room          string        `json:"room"`
	Identity      string        `json:"identity"`
	Name          string        `json:"name"` // the display name others see: the token's name claim when it has one
	Grants        Grants        `json:"grants"`
	Participants  []Participant `json:"participants"`
	Tracks        []Track       `json:"tracks"`
	ViewerCount   int           `json:"viewer_count"`
}

// TrackInfo is the metadata of one track in a publish message, keyed by the
// msid track id of the offer.
type TrackInfo struct {
	TrackID string `json:"track_id"`
	Source  string `json:"source,omitempty"`
	Name    string `json:"name,omitempty"`
}

// PublishRequest is the data of a publish message.
type PublishRequest struct {
	SDP    string      `json:"sdp"`
	Tracks []TrackInfo `json:"tracks,omitempty"`
}

// SDPMessage is the data of offer and answer messages.
type SDPMessage struct {
	SDP string `json:"sdp"`
}

// Trickle is the data of a trickle message, both ways. A nil Candidate means
// end of candidates.
type Trickle struct {
	Target    string                   `json:"target"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
}

// TrackIDs is the data of subscribe, unsubscribe, subscribed and
// unsubscribed.
type TrackIDs struct {
	TrackIDs []string `json:"track_ids"`
}

// ChatMessage is the data of a chat message or event.
type ChatMessage struct {
	ParticipantID string `json:"participant_id,omitempty"`
	Name          string `json:"name,omitempty"`
	Text          string `json:"text"`
}

// Reaction is the data of a reaction message or event.
type Reaction struct {
	ParticipantID string `json:"participant_id,omitempty"`
	Name          string `json:"name,omitempty"`
	Emoji         string `json:"emoji"`
}

// ViewerCount is the data of a viewer_count event: participants holding a
// subscriber connection, sent when it changed, at most once a second.
type ViewerCount struct {
	Count int `json:"count"`
}
