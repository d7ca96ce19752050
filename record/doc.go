// Package record writes rooms' recordings to an S3-compatible store: the
// same fMP4 init segments and segments the room's LL-HLS muxer (package
// hls) makes, read from it as an in-process player does, with an EVENT
// playlist uploaded after each segment (what a node that dies leaves is
// playable) and a VOD playlist (EXT-X-ENDLIST) when the recording ends.
//
// Uploads go through a bounded local spool (recording.spool_dir) in the
// order they were made, each retried with back-off until the store
// answers: nothing is lost while the store is briefly unreachable. Past
// recording.spool_max_bytes the oldest segment not uploaded is dropped and
// counted. A Manager implements room.Recorder (docs/operations.md,
// Recordings).
package record
