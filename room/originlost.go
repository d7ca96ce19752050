package room

import (
	"context"
	"slices"
	"time"
)

// When the node that publishes a room's tracks (their origin) is lost, it
// died (its registry entry expired) or it drained (it said so before it
// exited), every other node of the room tells its clients OriginLost and
// keeps the tracks for Options.RepublishGrace, as a node keeps a local
// broadcaster's tracks when its connection drops: the relayed copies stay
// published here and their viewers keep their down-tracks, waiting.
//
// A broadcaster who publishes again on a node that holds such a copy (it
// had viewers of the room, so it had a relay) takes the copy's track ids:
// the copy becomes that node's own track (claimRepublish matches it by
// identity, kind, source and name), its viewers there are re-anchored to
// the new track, and the node announces the tracks as published by it.
// The other nodes then relay them from the new origin and re-anchor their
// viewers to the new copies (addRelayed): nobody renegotiates, nobody
// rejoins, sequence numbers continue.
//
// When the grace period passes first, the tracks are unpublished for good,
// as when a broadcaster does not come back.

// RemoteNodeLost handles the loss of node (the cluster found it dead, or it
// said it leaves): its tracks in the room are kept as lost (or unpublished
// at once without a grace period), its publishers leave, its viewers no
// longer count, and the relay from it is dropped without dropping the
// copies.
func (r *Room) RemoteNodeLost(node string) {
	grace := r.m.opt.Room.RepublishGrace
	var gone []string // tracks unpublished at once
	r.applyRemote(func(v *remoteView) ([]Event, bool) {
		v.gone[node] = true
		var tracks, parts []string
		var unpublished, left []Event
		for id, t := range v.tracks {
			if t.Node != node {
				continue
			}
			delete(v.tracks, id)
			tracks = append(tracks, id)
			if grace > 0 {
				v.lost[id] = t
			} else {
				gone = append(gone, id)
				unpublished = append(unpublished, TrackUnpublished{TrackID: id, ParticipantID: t.Info.ParticipantID})
			}
		}
		for id, p := range v.participants {
			if p.node == node {
				delete(v.participants, id)
				parts = append(parts, id)
				left = append(left, ParticipantLeft{ParticipantID: id})
			}
		}
		_, counted := v.viewers[node]
		delete(v.viewers, node)
		delete(v.members, node)
		if len(tracks) == 0 && len(parts) == 0 {
			return nil, counted
		}
		slices.Sort(tracks)
		slices.Sort(parts)
		if grace > 0 && len(tracks) > 0 {
			v.timers = append(v.timers, time.AfterFunc(grace, func() { r.expireLost(tracks) }))
		}
		r.m.originsLost.Add(1)
		r.m.log.Warn("cluster: a room's origin node is lost", "room", r.name, "node", node,
			"tracks", len(tracks), "kept_for", grace)
		evs := []Event{OriginLost{Node: node, ParticipantIDs: parts, TrackIDs: tracks}}
		return append(append(evs, unpublished...), left...), counted
	})
	r.failRelay(node)
	for _, id := range gone {
		r.dropRemoteTrack(id)
	}
}

// expireLost unpublishes the tracks among ids that are still lost: nobody
// published them again within the grace period.
func (r *Room) expireLost(ids []string) {
	var expired []string
	r.applyRemote(func(v *remoteView) ([]Event, bool) {
		var evs []Event
		for _, id := range ids {
			if t, ok := v.lost[id]; ok {
				delete(v.lost, id)
				expired = append(expired, id)
				evs = append(evs, TrackUnpublished{TrackID: id, ParticipantID: t.Info.ParticipantID})
			}
		}
		return evs, false
	})
	for _, id := range expired {
		r.dropRemoteTrack(id)
	}
	if len(expired) > 0 {
		r.m.log.Info("cluster: lost tracks not republished within the grace period", "room", r.name, "tracks", len(expired))
	}
}

// failRelay drops the room's relay from origin as a lost connection: the
// copies it fed stay, for a new relay (or a republished track) to feed.
func (r *Room) failRelay(origin string) {
	r.mu.Lock()
	er := r.relay.relays[origin]
	r.mu.Unlock()
	if er != nil {
		er.fail()
	}
}

// claimRemote returns the id of a track of another node that a new local
// track with republish key takes over, or "": the broadcaster moved here.
// Its old node may be lost (a lost track kept for the grace period), be
// draining, no longer have the broadcaster, or still list it: a node that
// was killed a moment ago, or hangs, is registered until its lease ends,
// and its viewers elsewhere wait for the broadcast meanwhile. The track
// keeps its id, so every node re-anchors its viewers to the new origin's
// copy without a renegotiation (issue 23: a republish while the old origin
// is still registered is a take-over, not a new broadcast).
func (r *Room) claimRemote(key string) string {
	if r.m.cluster == nil {
		return "" // alone: no other node's track to take over
	}
	v := r.remote
	// A room new to this node (the broadcaster's move created it) may not
	// have read the other nodes' tracks yet: wait for that, briefly.
	r.waitLinked(context.Background(), time.Second)
	v.mu.Lock()
	defer v.mu.Unlock()
	for id, t := range v.lost {
		if t.key() == key {
			delete(v.lost, id)
			return id
		}
	}
	// Of several (the broadcaster moved more than once), the one whose
	// publisher left its node first.
	best := ""
	for id, t := range v.tracks {
		if t.key() != key {
			continue
		}
		if _, present := v.participants[t.Info.ParticipantID]; !present || best == "" {
			best = id
		}
	}
	if best != "" {
		delete(v.tracks, best)
	}
	return best
}
