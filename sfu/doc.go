// Package sfu is the media plane of HaloBuzz Live: Pion peer connections for
// publishers and subscribers, one forwarder per published track, and one
// down-track per viewer of that track.
//
// What it owns: the process-wide Pion API (one UDP port shared by every peer),
// the per-packet path (read once from the publisher, write to every viewer
// without decoding), the shared packet cache that answers NACKs and gives late
// joiners the current picture, and keyframe requests toward publishers, merged
// and rate-limited per track. It registers its own metrics
// (Engine.RegisterMetrics) on the registry the node gives it.
//
// One exception to "exported APIs only": dtlskeys.go reads a viewer
// connection's DTLS keys from Pion's internals, because no exported API
// gives them; it is checked when the package loads, and every viewer stays
// on Pion's path if the check fails.
//
// What it must not do: know about rooms, tokens, WebSocket messages or Redis.
// Package room decides who may publish and who watches what; this package
// only moves packets and negotiates SDP. Only room (and the composition root,
// internal/node) import it: signalling speaks to rooms in room's words.
package sfu
