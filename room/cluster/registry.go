package cluster

import (
	"context"
	"runtime"
	"syscall"
	"time"

	"github.com/halobuzz/live/room"
)

// heartbeat is the node's cluster loop (Close ends it): every Heartbeat it registers the node with its load, renews the
// leases on everything it wrote, and re-registers what the store lost; in
// between it flushes changed viewer counts.
//
// When the store is unreachable the loop keeps trying at the same pace (that
// is the reconnect loop); the first beat that gets through rewrites the
// node's whole state, so a Redis that restarted empty is repaired within one
// heartbeat.
func (c *Cluster) heartbeat(ctx context.Context, cpu *cpuMeter) {
	defer close(c.done)
	beat := time.NewTicker(c.opt.Heartbeat)
	defer beat.Stop()
	flush := time.NewTicker(viewerFlush)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			c.flushViewers()
		case <-beat.C:
			c.beat(ctx, cpu)
		}
	}
}

func (c *Cluster) beat(ctx context.Context, cpu *cpuMeter) {
	c.beats.Add(1)
	rooms := c.m.Rooms()
	leases := Leases{Rooms: make([]string, 0, len(rooms))}
	byName := make(map[string]*room.Room, len(rooms))
	for _, r := range rooms {
		leases.Rooms = append(leases.Rooms, r.Name())
		byName[r.Name()] = r
		for _, id := range r.Origins() {
			leases.Origins = append(leases.Origins, OriginKey{Room: r.Name(), Track: id})
		}
	}
	bctx, cancel := context.WithTimeout(ctx, c.opt.Heartbeat)
	defer cancel()
	began := time.Now()
	err := c.store.PutNode(bctx, c.nodeInfo(cpu.sample()))
	var ren Renewal
	if err == nil {
		ren, err = c.store.Renew(bctx, leases)
	}
	if err == nil {
		c.latency.observe(time.Since(began))
		c.writeIndex(bctx) // directory.go
	}
	if err != nil {
		c.resync.Store(true)
		if ctx.Err() != nil {
			return // stopping, not a store failure
		}
		c.beatFailures.Add(1)
		if c.up.Swap(false) || c.beats.Load() == 1 {
			c.log.Warn("cluster: store unreachable; serving what this node has, retrying every heartbeat", "err", err)
		}
		return
	}
	if nodes, err := c.store.Nodes(bctx); err == nil {
		c.nodes.Store(int64(len(nodes)))
		c.nodeList.Store(&nodes)
		live := make(map[string]bool, len(nodes))
		for _, n := range nodes {
			live[n.ID] = true
		}
		c.forgetNodes(live)
	}
	if !c.up.Swap(true) && c.beats.Load() > 1 {
		c.log.Info("cluster: store reachable again; re-registering this node's state", "rooms", len(rooms))
		c.reconcile = forgetAfter + 1 // events sent meanwhile were lost: re-read the rooms
	}
	if c.reconcile > 0 {
		c.reconcile--
		c.reconcileRooms()
	}
	c.relinkRooms()
	if c.resync.Swap(false) {
		if !c.syncRooms(rooms) {
			c.resync.Store(true)
		}
		return
	}
	missing := map[*room.Room]bool{}
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
		list := make([]*room.Room, 0, len(missing))
		for r := range missing {
			list = append(list, r)
		}
		c.log.Info("cluster: store lost part of this node's state; re-registering", "rooms", len(list))
		if !c.syncRooms(list) {
			c.resync.Store(true)
		}
	}
}

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
