// Package hls serves each room's broadcast as Low-Latency HLS (RFC 8216bis):
// CMAF/fMP4 segments and partial segments, blocking playlist reload and
// preload hints, muxed by bluenviron/gohlslib from the RTP a room's tracks
// already carry. Nothing is transcoded: H.264, H.265, VP9 or AV1 video passes through as sent
// (a VP8 broadcast is refused with a clear error) and Opus audio goes into
// fMP4 as it is.
//
// A room's muxer (Session) starts at the first request for the room and
// stops when nobody has asked for it for hls.idle_timeout, or when its
// broadcast ends. It reads the tracks through taps, in-process viewers that
// get what a WebRTC viewer gets (sfu.Tap), so the packet path has no hook
// of its own. A broadcast published on another node of the cluster is
// pulled here over the cluster's relay and held while the muxer runs
// (Source.Hold). Server is the HTTP side: paths, optional signed URLs, caching
// headers a CDN can follow.
package hls
