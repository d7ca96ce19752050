// Package room owns rooms, their participants and their track catalogue, and
// decides who receives what: when a broadcaster's track starts, every viewer
// of the room is subscribed to it; when it ends, they are unsubscribed.
//
// Other nodes are behind a port this package defines, Cluster (port.go):
// package room/cluster implements it over Redis and the node wires it. What
// a room tells the other nodes (records, events, origin claims, counts)
// leaves through it without waiting for the network; what happens there
// comes back through the Room's Remote* methods (remote.go), which keep the
// room's view of the other nodes: relays (relay.go) and the republish of a
// lost origin's tracks (originlost.go) are decided from that view. A node
// alone has no Cluster and runs no cluster code; this package imports no
// Redis client.
//
// For the server API it reads the rooms of the whole cluster (directory.go:
// an index of rooms per node and one room's state, through the Cluster's
// Directory) and moderates them (moderation.go: remove, end, message,
// grants, bans; on the other nodes through the Cluster's Moderator).
//
// Its exported API speaks room's own vocabulary (media.go: track metadata,
// ICE fragments, viewer stats, the media plane's errors; records.go: a
// participant, a track and a room as other nodes see them), so signalling
// imports room and never sfu. It registers its own metrics
// (Manager.RegisterMetrics).
//
// What it must not do: speak any wire protocol (that is package signaling) or
// touch packets (package sfu). Events for clients leave through EventSink,
// which signalling implements.
package room
