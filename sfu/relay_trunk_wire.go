package sfu

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
)

// The control messages of a relay trunk (relay_trunk.go): JSON, cut into
// chunks that fit any SCTP message size a peer announces. A chunk is one
// flag byte ('+': more follow, '.': the last) and up to trunkChunk bytes.

const (
	trunkChunk      = 16 << 10 // payload bytes per data channel message
	trunkMaxMessage = 4 << 20  // a whole control message, reassembled
	trunkMaxTracks  = 4096     // track ids in one message
	trunkMaxID      = 256      // bytes of a room name or track id
)

// errTrunkMessage is the error of a control message that cannot be read.
var errTrunkMessage = errors.New("sfu: bad relay trunk message")

// trunkRequest is the edge's change: tracks to add, per room, and tracks to
// remove, with the offer that carries them.
type trunkRequest struct {
	Seq    uint64     `json:"seq"`
	Add    []TrunkAdd `json:"add,omitempty"`
	Remove []string   `json:"remove,omitempty"`
	SDP    string     `json:"sdp,omitempty"`
	// Applied acknowledges the answer to request Seq: the edge applied it,
	// so the origin may start sending the new tracks (packets sent before
	// the edge knows their SSRCs would be dropped, and Pion would not
	// announce the track).
	Applied bool `json:"applied,omitempty"`
}

// trunkReply is the origin's answer to the request Seq, or its refusal
// (Code, Error).
type trunkReply struct {
	Seq     uint64   `json:"seq"`
	SDP     string   `json:"sdp,omitempty"`
	Refused []string `json:"refused,omitempty"` // rooms whose tracks the origin does not publish
	Code    string   `json:"code,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func encodeTrunkRequest(r trunkRequest) ([]byte, error) { return json.Marshal(r) }
func encodeTrunkReply(r trunkReply) ([]byte, error)     { return json.Marshal(r) }

// decodeTrunkRequest reads and checks an edge's request.
func decodeTrunkRequest(b []byte) (trunkRequest, error) {
	var r trunkRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: %w", errTrunkMessage, err)
	}
	if r.Applied {
		if r.SDP != "" || len(r.Add) > 0 || len(r.Remove) > 0 {
			return r, fmt.Errorf("%w: an acknowledgement carries nothing else", errTrunkMessage)
		}
		return r, nil
	}
	if r.SDP == "" {
		return r, fmt.Errorf("%w: no sdp", errTrunkMessage)
	}
	n := len(r.Remove)
	for _, id := range r.Remove {
		if id == "" || len(id) > trunkMaxID {
			return r, fmt.Errorf("%w: a removed track id is empty or longer than %d bytes", errTrunkMessage, trunkMaxID)
		}
	}
	for _, a := range r.Add {
		if a.Room == "" || len(a.Room) > trunkMaxID {
			return r, fmt.Errorf("%w: a room name is empty or longer than %d bytes", errTrunkMessage, trunkMaxID)
		}
		if len(a.Tracks) == 0 {
			return r, fmt.Errorf("%w: room %q: no tracks", errTrunkMessage, a.Room)
		}
		for _, id := range a.Tracks {
			if id == "" || len(id) > trunkMaxID {
				return r, fmt.Errorf("%w: room %q: a track id is empty or longer than %d bytes", errTrunkMessage, a.Room, trunkMaxID)
			}
		}
		n += len(a.Tracks)
	}
	if n > trunkMaxTracks {
		return r, fmt.Errorf("%w: %d tracks in one message, at most %d", errTrunkMessage, n, trunkMaxTracks)
	}
	return r, nil
}

// decodeTrunkReply reads and checks an origin's reply.
func decodeTrunkReply(b []byte) (trunkReply, error) {
	var r trunkReply
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: %w", errTrunkMessage, err)
	}
	if r.SDP == "" && r.Error == "" {
		return r, fmt.Errorf("%w: neither sdp nor error", errTrunkMessage)
	}
	return r, nil
}

// sendTrunk sends msg over dc in chunks.
func sendTrunk(dc *webrtc.DataChannel, msg []byte) error {
	for len(msg) > 0 {
		n := min(len(msg), trunkChunk)
		chunk := make([]byte, 0, n+1)
		flag := byte('.')
		if n < len(msg) {
			flag = '+'
		}
		chunk = append(append(chunk, flag), msg[:n]...)
		if err := dc.Send(chunk); err != nil {
			return err
		}
		msg = msg[n:]
	}
	return nil
}

// trunkReassembler puts a control message's chunks together. One data
// channel delivers its messages one at a time, in order.
type trunkReassembler struct{ buf []byte }

// add takes one chunk and returns the whole message once its last chunk
// came.
func (r *trunkReassembler) add(chunk []byte) ([]byte, bool, error) {
	if len(chunk) == 0 || (chunk[0] != '+' && chunk[0] != '.') {
		r.buf = nil
		return nil, false, fmt.Errorf("%w: a chunk starts with neither '+' nor '.'", errTrunkMessage)
	}
	if len(r.buf)+len(chunk)-1 > trunkMaxMessage {
		r.buf = nil
		return nil, false, fmt.Errorf("%w: longer than %d bytes", errTrunkMessage, trunkMaxMessage)
	}
	r.buf = append(r.buf, chunk[1:]...)
	if chunk[0] == '+' {
		return nil, false, nil
	}
	msg := r.buf
	r.buf = nil
	return msg, true, nil
}
