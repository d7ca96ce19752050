package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/halobuzz/live/room"
)

// The index of rooms (room.Directory): every node rewrites its own entries
// (each room it serves, with its counts) at every heartbeat, under its
// lease, so a listing of 10,000 rooms reads one entry list per live node
// rather than every room's keys, and a dead node's entries end with its
// lease.

// indexStore is a Store that keeps the index of rooms.
type indexStore interface {
	// PutIndex replaces this node's entries.
	PutIndex(ctx context.Context, entries []room.RoomEntry) error
	// Index returns the entries of nodes.
	Index(ctx context.Context, nodes []string) ([]room.RoomEntry, error)
	// RoomStates reads several rooms at once (an empty state for a room no
	// node holds).
	RoomStates(ctx context.Context, names []string) ([]room.RoomState, error)
	// RoomEntries reads room's entries in the index of nodes.
	RoomEntries(ctx context.Context, name string, nodes []string) ([]room.RoomEntry, error)
}

var _ room.Directory = (*Cluster)(nil)

// writeIndex rewrites this node's entries of the index (the heartbeat).
func (c *Cluster) writeIndex(ctx context.Context) {
	is, ok := c.store.(indexStore)
	if !ok {
		return
	}
	if err := is.PutIndex(ctx, c.m.LocalEntries()); err != nil && ctx.Err() == nil {
		c.log.Debug("cluster: writing the index of rooms failed; retried at the next heartbeat", "err", err)
	}
}

// RoomIndex implements room.Directory: the entries of every live node.
func (c *Cluster) RoomIndex(ctx context.Context) ([]room.RoomEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*c.opt.StoreTimeout)
	defer cancel()
	nodes, err := c.store.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", room.ErrClusterUnavailable, err)
	}
	ids := make([]string, 0, len(nodes))
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	if is, ok := c.store.(indexStore); ok {
		entries, err := is.Index(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", room.ErrClusterUnavailable, err)
		}
		return entries, nil
	}
	// A store without an index: every room, read one by one.
	names, err := c.store.Rooms(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", room.ErrClusterUnavailable, err)
	}
	var out []room.RoomEntry
	for _, name := range names {
		st, err := c.readRoom(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", room.ErrClusterUnavailable, err)
		}
		for node, v := range st.Viewers {
			e := room.RoomEntry{Name: name, Node: node, Viewers: v}
			for _, p := range st.Participants {
				if p.Node == node {
					e.Participants++
				}
			}
			for _, t := range st.Tracks {
				if t.Node == node {
					e.Tracks++
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// RoomState implements room.Directory: the room over all nodes (no node:
// an empty state).
func (c *Cluster) RoomState(ctx context.Context, name string) (room.RoomState, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*c.opt.StoreTimeout)
	defer cancel()
	st, err := c.store.Room(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return room.RoomState{Name: name}, nil
	}
	if err != nil {
		return room.RoomState{}, fmt.Errorf("%w: %w", room.ErrClusterUnavailable, err)
	}
	return st, nil
}

// RoomStates implements room.Directory: the rooms of a page at once.
func (c *Cluster) RoomStates(ctx context.Context, names []string) ([]room.RoomState, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*c.opt.StoreTimeout)
	defer cancel()
	if is, ok := c.store.(indexStore); ok {
		out, err := is.RoomStates(ctx, names)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", room.ErrClusterUnavailable, err)
		}
		return out, nil
	}
	out := make([]room.RoomState, len(names))
	for i, name := range names {
		st, err := c.RoomState(ctx, name)
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// RoomEntries implements room.Directory.
func (c *Cluster) RoomEntries(ctx context.Context, name string, nodes []string) ([]room.RoomEntry, error) {
	is, ok := c.store.(indexStore)
	if !ok {
		return nil, nil // the memory store keeps no index: no start time
	}
	ctx, cancel := context.WithTimeout(ctx, 4*c.opt.StoreTimeout)
	defer cancel()
	out, err := is.RoomEntries(ctx, name, nodes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", room.ErrClusterUnavailable, err)
	}
	return out, nil
}
