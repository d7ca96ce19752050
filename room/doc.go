// Package room owns rooms, their participants and their track catalogue, and
// decides who receives what: when a broadcaster's track starts, every viewer
// of the room is subscribed to it; when it ends, they are unsubscribed.
//
// State that other nodes must see (which rooms exist, who is in them, which
// tracks are published) is written through the Store interface: an in-memory
// Store serves a single node, a Redis Store (later) a cluster.
//
// What it must not do: speak any wire protocol (that is package signaling) or
// touch packets (package sfu). Events for clients leave through EventSink,
// which signalling implements.
package room
