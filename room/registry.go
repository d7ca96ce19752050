package room

import (
	"context"
	"runtime"
	"syscall"
	"time"
)

// heartbeat is the node's cluster loop, owned by the Manager (stopCluster
// ends it): every Heartbeat it registers the node with its load, renews the
// leases on everything it wrote, and re-registers what the store lost; in
// between it flushes changed viewer counts.
//
// When the store is unreachable the loop keeps trying at the same pace (that
// is the reconnect loop); the first beat that gets through rewrites the
// node's whole state, so a Redis that restarted empty is repaired within one
// heartbeat.
func (m *Manager) heartbeat(ctx context.Context, cpu *cpuMeter) {
	c := &m.cluster
	defer close(c.done)
	beat := time.NewTicker(m.heartbeatInterval())
	defer beat.Stop()
	flush := time.NewTicker(viewerFlush)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			m.flushViewers()
		case <-beat.C:
			m.beat(ctx, cpu)
		}
	}
}

func (m *Manager) beat(ctx context.Context, cpu *cpuMeter) {
	c := &m.cluster
	c.beats.Add(1)
	rooms := m.localRooms()
	leases := Leases{Rooms: make([]string, 0, len(rooms))}
	byName := make(map[string]*Room, len(rooms))
	for _, r := range rooms {
		leases.Rooms = append(leases.Rooms, r.name)
		byName[r.name] = r
		for _, id := range r.trackIDs() {
			leases.Origins = append(leases.Origins, OriginKey{Room: r.name, Track: id})
		}
	}
	bctx, cancel := context.WithTimeout(ctx, m.heartbeatInterval())
	defer cancel()
	began := time.Now()
	err := m.store.PutNode(bctx, m.nodeInfo(cpu.sample()))
	var ren Renewal
	if err == nil {
		ren, err = m.store.Renew(bctx, leases)
	}
	if err == nil {
		c.latency.observe(time.Since(began))
	}
	if err != nil {
		c.resync.Store(true)
		if ctx.Err() != nil {
			return // stopping, not a store failure
		}
		c.beatFailures.Add(1)
		if c.up.Swap(false) || c.beats.Load() == 1 {
			m.log.Warn("cluster: store unreachable; serving what this node has, retrying every heartbeat", "err", err)
		}
		return
	}
	if nodes, err := m.store.Nodes(bctx); err == nil {
		c.nodes.Store(int64(len(nodes)))
		c.nodeList.Store(&nodes)
		live := make(map[string]bool, len(nodes))
		for _, n := range nodes {
			live[n.ID] = true
		}
		m.forgetNodes(live)
	}
	if !c.up.Swap(true) && c.beats.Load() > 1 {
		m.log.Info("cluster: store reachable again; re-registering this node's state", "rooms", len(rooms))
		c.reconcile = forgetAfter + 1 // events sent meanwhile were lost: re-read the rooms
	}
	if c.reconcile > 0 {
		c.reconcile--
		m.reconcileRooms()
	}
	m.relinkRooms()
	if c.resync.Swap(false) {
		if !m.syncRooms(rooms) {
			c.resync.Store(true)
		}
		return
	}
	missing := map[*Room]bool{}
	for _, name := range ren.Missing {
		if r := byName[name]; r != nil {
			missing[r] = true
		}
	}
	for _, k := range ren.Lost {
		if r := byName[k.Room]; r != nil {
			missing[r] = true
		}
	}
	if len(missing) > 0 {
		list := make([]*Room, 0, len(missing))
		for r := range missing {
			list = append(list, r)
		}
		m.log.Info("cluster: store lost part of this node's state; re-registering", "rooms", len(list))
		if !m.syncRooms(list) {
			c.resync.Store(true)
		}
	}
}

// trackIDs lists the ids of the room's published tracks.
func (r *Room) trackIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.tracks))
	for id, t := range r.tracks {
		if t.relay == nil {
			out = append(out, id)
		}
	}
	return out
}

// nodeInfo is the node's registry entry now.
func (m *Manager) nodeInfo(cpu float64) NodeInfo {
	s := m.Stats()
	m.cluster.mu.Lock()
	n := m.opt.Node
	m.cluster.mu.Unlock()
	n.ID = m.opt.NodeID
	n.Rooms, n.Participants, n.Viewers, n.Tracks = s.Rooms, s.Participants, s.Viewers, s.Tracks
	n.CPU = cpu
	n.StartedAt = m.cluster.started.UTC().Truncate(time.Second)
	n.UpdatedAt = time.Now().UTC()
	n.Draining = m.isDraining()
	return n
}

// Nodes lists the live nodes of the cluster (this one alone when it serves
// alone).
func (m *Manager) Nodes(ctx context.Context) ([]NodeInfo, error) {
	if !m.opt.Cluster {
		n := m.nodeInfo(0)
		return []NodeInfo{n}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.storeTimeout())
	defer cancel()
	nodes, err := m.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	return nodes, nil
}

// Region returns the region of this node.
func (m *Manager) Region() string {
	m.cluster.mu.Lock()
	defer m.cluster.mu.Unlock()
	return m.opt.Node.Region
}

// SetPublicURL sets the URL the registry announces for this node, once its
// listener is bound (a configured http.public_url needs no call).
func (m *Manager) SetPublicURL(u string) {
	m.cluster.mu.Lock()
	m.opt.Node.PublicURL = u
	m.cluster.mu.Unlock()
	if m.opt.Cluster {
		// Announce it now rather than at the next heartbeat: until then
		// other nodes cannot reach this one (relays, redirects).
		m.storeWrite(func(ctx context.Context) error { return m.store.PutNode(ctx, m.nodeInfo(0)) })
	}
}

// NodeID returns the id of this node.
func (m *Manager) NodeID() string { return m.opt.NodeID }

// cpuMeter measures the process's CPU use between two samples, as a share
// of the machine (0..1).
type cpuMeter struct {
	last time.Time
	used time.Duration
}

func (c *cpuMeter) sample() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	now := time.Now()
	share := 0.0
	if !c.last.IsZero() {
		if wall := now.Sub(c.last); wall > 0 {
			share = float64(used-c.used) / float64(wall) / float64(runtime.NumCPU())
		}
	}
	c.last, c.used = now, used
	return min(max(share, 0), 1)
}
