package room

import "github.com/pion/webrtc/v4"

// EventSink receives a participant's events. Implementations must not block
// (signalling queues them, and drops a client whose queue is full) and must
// not call back into the room: events are delivered while the room orders
// its broadcasts.
type EventSink interface {
	Event(Event)
}

// Event is one of the event types below.
type Event interface{ event() }

// ParticipantInfo describes a participant to clients.
type ParticipantInfo struct {
	ID        string
	Identity  string
	Name      string
	Publisher bool
}

// TrackInfo describes a published track to clients.
type TrackInfo struct {
	ID            string
	ParticipantID string
	Kind          string // audio or video
	Source        string
	Name          string
	MID           string
	Codec         string
	// Layers lists the simulcast layers (RIDs) the publisher sends the
	// track in; empty for a single encoding (and for a relayed copy, which
	// carries one layer).
	Layers []string
	// Siblings is how many tracks the publisher sends, this one included,
	// when it started (sfu.TrackInfo.Siblings; 0: not known). Not shown to
	// clients: an edge node waits for all of them before it relays.
	Siblings int
}

// Events.
type (
	// ParticipantJoined: another participant is on stage: it published its
	// first track. Viewers (participants that only watch) and hidden
	// participants are never announced; the audience is a ViewerCount.
	ParticipantJoined struct{ Participant ParticipantInfo }
	// ParticipantLeft: an announced participant left.
	ParticipantLeft struct{ ParticipantID string }
	// TrackPublished: a track started in the room.
	TrackPublished struct{ Track TrackInfo }
	// TrackUnpublished: a track ended.
	TrackUnpublished struct{ TrackID, ParticipantID string }
	// ViewerCount: the number of viewers changed. Sent at most once a
	// second, coalescing the changes in between.
	ViewerCount struct{ Count int }
	// Offer: the server's offer on the subscriber connection, to be answered.
	Offer struct{ SDP string }
	// Candidate: a server ICE candidate for the publisher or subscriber connection.
	Candidate struct {
		Target    string // "publisher" or "subscriber"
		Candidate webrtc.ICECandidateInit
	}
	// Chat: a chat message in the room. Identity is the sender's token
	// identity (sub), so an app can moderate the person, not only this
	// participant.
	Chat struct{ ParticipantID, Identity, Name, Text string }
	// Reaction: a participant reacted (an emoji). Identity as in Chat.
	Reaction struct{ ParticipantID, Identity, Name, Emoji string }
	// Closed: the participant was removed (connection failed, node draining).
	Closed struct{ Reason error }
	// OriginLost: the node that published these tracks is gone (it died or
	// drained) and its publishers left. The tracks stay for the republish
	// grace period: when their broadcaster publishes again on another node
	// they resume on the same ids (TrackPublished with the new participant),
	// else TrackUnpublished follows.
	OriginLost struct {
		Node                     string
		ParticipantIDs, TrackIDs []string
	}
	// LayersWanted: to a simulcast publisher, the layers (RIDs) of its
	// track its viewers want; it should pause the others.
	LayersWanted struct {
		TrackID, ClientTrackID string
		Active                 []string
	}
	// Redirect: the node drains; the client should connect to URL (another
	// node) and join again there before it leaves this one.
	Redirect struct{ URL string }
	// MediaFailed: the participant's publisher or subscriber connection
	// failed and was released; the participant is still in the room.
	MediaFailed struct{ Target string }
	// MediaConnected: the participant's subscriber connection is up for
	// the first time; from now on it counts in the audience.
	MediaConnected struct{ Target string }
)

func (ParticipantJoined) event() {}
func (ParticipantLeft) event()   {}
func (TrackPublished) event()    {}
func (TrackUnpublished) event()  {}
func (ViewerCount) event()       {}
func (Offer) event()             {}
func (Candidate) event()         {}
func (Chat) event()              {}
func (Reaction) event()          {}
func (Closed) event()            {}
func (MediaFailed) event()       {}
func (MediaConnected) event()    {}
func (OriginLost) event()        {}
func (Redirect) event()          {}
func (LayersWanted) event()      {}

// LayerSink is implemented by event sinks whose client can pause and
// resume its simulcast layers when told (LayersWanted).
type LayerSink interface {
	CanPauseLayers() bool
}
