package room

import (
	"context"
	"time"
)

// Trunks opened ahead of need. A trunk opened when a room first needs it
// costs that room's first viewer the whole set-up before the first frame:
// the HTTP request, ICE, DTLS, the data channel's association, then the
// change itself, about ten round trips between the nodes (4.3 s for
// europe's first viewer in make region-sim, 180 ms one way, against 2.9 s
// with a connection per room). So with trunks on, a node keeps a trunk
// open toward every other live node that serves them, checked every
// trunkPreopenEvery: a cold room then costs one change over an open trunk.
// An idle trunk costs a connection on both sides; at most
// maxPreopenTrunks are opened ahead (a larger cluster opens the rest on
// demand).

// trunkPreopenEvery is how often the registry is read for nodes without a
// trunk.
const trunkPreopenEvery = 2 * time.Second

// maxPreopenTrunks bounds the trunks a node opens ahead of need.
const maxPreopenTrunks = 64

// startTrunkPreopen starts the loop; stopTrunkPreopen ends it.
func (m *Manager) startTrunkPreopen() {
	m.preopenStop, m.preopenDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.preopenDone)
		tick := time.NewTicker(trunkPreopenEvery)
		defer tick.Stop()
		for {
			m.preopenTrunks()
			select {
			case <-m.preopenStop:
				return
			case <-tick.C:
			}
		}
	}()
}

func (m *Manager) stopTrunkPreopen() {
	if m.preopenStop != nil {
		close(m.preopenStop)
		<-m.preopenDone
		m.preopenStop = nil
	}
}

// preopenTrunks opens a trunk toward each live node serving them that has
// none yet (not draining, not this node), without waiting for it.
func (m *Manager) preopenTrunks() {
	if m.isDraining() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	nodes, err := m.Nodes(ctx)
	cancel()
	if err != nil {
		return
	}
	ts := m.trunkSet()
	ts.mu.Lock()
	open := len(ts.in)
	ts.mu.Unlock()
	for _, n := range nodes {
		if open >= maxPreopenTrunks {
			return
		}
		if n.ID == m.opt.NodeID || !n.Trunks || n.Draining {
			continue
		}
		ts.mu.Lock()
		_, ok := ts.in[n.ID]
		ts.mu.Unlock()
		if ok {
			continue
		}
		open++
		id := n.ID
		m.goRelay(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = m.trunkTo(ctx, id) // a failure is tried again on the next round
		})
	}
}
