// Package sfu is the media plane of HaloBuzz Live: Pion peer connections for
// publishers and subscribers, one forwarder per published track, and one
// down-track per viewer of that track.
//
// What it owns: the process-wide Pion API (one UDP port shared by every peer),
// the per-packet path (read once from the publisher, write to every viewer
// without decoding), the shared packet cache that answers NACKs and gives late
// joiners the current picture, and keyframe requests toward publishers, merged
// and rate-limited per track.
//
// What it must not do: know about rooms, tokens, WebSocket messages or Redis.
// Callers (package room and signaling) decide who may publish and who watches
// what; this package only moves packets and negotiates SDP.
package sfu
