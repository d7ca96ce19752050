// Package room owns rooms, their participants and their track catalogue, and
// decides who receives what: when a broadcaster's track starts, every viewer
// of the room is subscribed to it; when it ends, they are unsubscribed.
//
// State that other nodes must see (which rooms exist, who is in them, which
// tracks are published and where, how many watch on each node) is written
// through the Store interface: MemoryStore serves a single node, RedisStore
// a cluster. Both implement the same contract (leases, atomic origin
// claims, counters, the node registry, pub/sub), tested by one table.
// In a cluster the Manager's heartbeat (registry.go) registers the node and
// renews its leases, re-registering whatever the store lost (cluster.go),
// and room events cross nodes on the room's channel (pubsub.go).
//
// Its exported API speaks room's own vocabulary (media.go: track metadata,
// ICE fragments, viewer stats, the media plane's errors), so signalling
// imports room and never sfu. It registers its own metrics
// (Manager.RegisterMetrics).
//
// Not yet where it belongs: the cluster machinery (the Store and its
// implementations, the registry and heartbeat, pub/sub and reconciliation,
// write batching, origin-lost and drain bookkeeping) still lives here and
// shares the Manager's locks. It is to move behind a replication port that
// room defines, into a package of its own (docs/design.md, "Next").
//
// What it must not do: speak any wire protocol (that is package signaling) or
// touch packets (package sfu). Events for clients leave through EventSink,
// which signalling implements.
package room
