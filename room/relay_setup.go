package room

import (
	"context"
	"fmt"
	"time"
)

// Before a relay is set up: what to ask its origin for (all of a
// broadcaster's tracks, not the first alone) and where the origin is.

// relayGather is the longest a relay waits for the rest of a publisher's
// tracks (TrackInfo.Siblings) once the first is known here. A broadcaster's
// audio and video start together, but their announcements can reach this
// node a few round trips to Redis apart; a relay set up for the first alone
// has to be set up again for both (its HTTP request, ICE and DTLS: 2.7 s to
// a node 180 ms away), which the viewers waiting for the broadcast to start
// would wait for.
const relayGather = 500 * time.Millisecond

// incomplete reports whether tracks (one origin's) lack some of a
// publisher's announced siblings.
func incomplete(tracks []RemoteTrack) bool {
	have, want := map[string]int{}, map[string]int{}
	for _, t := range tracks {
		p := t.Info.ParticipantID
		have[p]++
		if n := t.Info.Siblings; n > 0 && n <= MaxSiblings {
			want[p] = max(want[p], n)
		}
	}
	for p, n := range want {
		if have[p] < n {
			return true
		}
	}
	return false
}

// originNode returns the registry entry of origin (the cluster keeps the
// registry as its last heartbeat read it, at most a heartbeat old: reading
// the store here cost a far edge a round trip to Redis, 240 ms at 120 ms
// away, before its first relay could start). The entry only gives the
// relay's address, which a node keeps while it lives; a relay that fails on
// a stale one is retried (relayRetry) after the next heartbeat.
func (m *Manager) originNode(ctx context.Context, origin string) (*NodeInfo, error) {
	n, err := m.cluster.Node(ctx, origin)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRelayUnavailable, err)
	}
	return n, nil
}
