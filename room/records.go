package room

import (
	"errors"
	"time"
)

// ErrClusterUnavailable is returned when work that needs the cluster's shared
// state (Redis) cannot reach it. It is retryable: the client should try again
// in a few seconds.
var ErrClusterUnavailable = errors.New("room: cluster state unavailable, retry shortly")

// ParticipantRecord is a participant as other nodes see it.
type ParticipantRecord struct {
	ID        string `json:"id"`
	Identity  string `json:"identity"`
	Name      string `json:"name"`
	Publisher bool   `json:"publisher"`
	Node      string `json:"node"`
	// JoinedAt is when the participant joined, Unix milliseconds (0 from
	// nodes that do not record it); Transport how it is connected:
	// websocket, whip or whep (directory.go).
	JoinedAt  int64  `json:"joined_at,omitempty"`
	Transport string `json:"transport,omitempty"`
}

// TrackRecord is a published track as other nodes see it.
type TrackRecord struct {
	ID            string `json:"id"`
	ParticipantID string `json:"participant_id"`
	Kind          string `json:"kind"`
	Source        string `json:"source"`
	Name          string `json:"name"`
	MID           string `json:"mid"`
	Codec         string `json:"codec"`
	Node          string `json:"node"` // where the publisher is connected (the origin)
	// Layers are the simulcast layers (RIDs) the track is sent in.
	Layers []string `json:"layers,omitempty"`
	// Siblings is how many tracks its publisher sends (TrackInfo.Siblings).
	Siblings int `json:"siblings,omitempty"`
}

// Record is the record of a track published on node, as other nodes see
// it.
func (i TrackInfo) Record(node string) TrackRecord {
	return TrackRecord{ID: i.ID, ParticipantID: i.ParticipantID, Kind: i.Kind, Source: i.Source, Name: i.Name,
		MID: i.MID, Codec: i.Codec, Node: node, Layers: i.Layers, Siblings: i.Siblings}
}

// Info is the track a record describes.
func (t TrackRecord) Info() TrackInfo {
	return TrackInfo{ID: t.ID, ParticipantID: t.ParticipantID, Kind: t.Kind, Source: t.Source, Name: t.Name,
		MID: t.MID, Codec: t.Codec, Layers: t.Layers, Siblings: t.Siblings}
}

// MaxSiblings bounds TrackRecord.Siblings from another node: more tracks
// than one publisher may send (limits.tracks_per_participant is far below).
const MaxSiblings = 64

// RoomState is everything a Store holds about one room, over all nodes.
type RoomState struct {
	Name         string
	Participants []ParticipantRecord // sorted by ID
	Tracks       []TrackRecord       // sorted by ID
	// Viewers is the viewer count of each node that serves the room.
	Viewers map[string]int
}

// NodeInfo is one node of the cluster as the registry lists it.
type NodeInfo struct {
	ID           string    `json:"id"`
	Region       string    `json:"region"`
	PublicURL    string    `json:"public_url"`
	RelayAddress string    `json:"relay_address"`
	Rooms        int       `json:"rooms"`
	Participants int       `json:"participants"`
	Viewers      int       `json:"viewers"`
	Tracks       int       `json:"tracks"`
	CPU          float64   `json:"cpu"` // share of the machine's CPUs the process used over the last heartbeat, 0..1
	StartedAt    time.Time `json:"started_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// Draining: the node is shutting down; no client or relay is sent to it.
	Draining bool `json:"draining,omitempty"`
	// Full: the node is past node.max_viewers or node.max_cpu; no new
	// client is sent to it (admission.go).
	Full bool `json:"full,omitempty"`
	// Trunks: the node serves relay trunks (cluster.relay_trunks), so an
	// edge pulls all its rooms from it on one connection (relay_trunk.go).
	Trunks bool `json:"trunks,omitempty"`
}
