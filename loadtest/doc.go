// Package loadtest is the synthetic client library of HaloBuzz Live: a
// signalling connection that speaks the WebSocket JSON protocol of
// docs/protocol.md, a Publisher that sends synthetic VP8 and Opus over WebRTC,
// a Viewer that receives and measures what the server forwards, and Run, a
// load-test runner that plays a Scenario and produces a Report.
//
// The package is an honest network client: it imports none of the server's
// packages and talks to a node only over the network, exactly as an app
// would. The server's integration tests and cmd/halo-loadtest both use it, so
// the tests and the load tester exercise the same code path.
//
// # Pieces
//
//   - Conn (Dial): one WebSocket, JSON envelopes, Request/reply matching by
//     id, server events through Next; protocol errors as *ProtocolError.
//   - Publisher: joins (auto_subscribe false), publishes VP8 tracks
//     "video0".. and an Opus track "audio0" with their metadata, trickles
//     ICE both ways, paces every track on one goroutine and answers RTCP
//     PLI/FIR with a keyframe.
//   - Viewer: joins with auto_subscribe, answers every server offer, reads
//     each remote track on one goroutine and counts packets, gaps, frames,
//     keyframes, time to first keyframe and one-way latency.
//   - Publisher and Viewer also speak plain WHIP/WHEP (RFC 9725) when given
//     an endpoint (PublisherConfig.WHIPURL, ViewerConfig.WHEPURL), so the
//     same load can be pointed at any WHIP/WHEP server.
//   - Scenario (ParseScenario for YAML) and Plan: rooms, publishers and
//     viewers with identities and times, laid out from a seed; Plan.Slice
//     cuts it into shards for several machines.
//   - Run: plays a plan against a Target and returns a Report (JSON,
//     text, HTML with inline SVG plots); Merge combines shard reports.
//   - MintToken, TokenMinter, RoomTokenMinter: HS256 access tokens for a
//     server whose secret the tester holds.
//
// Every goroutine is owned by the object that started it and ends in its
// Close. A context passed to Start bounds the start only, as with Dial.
//
// # Synthetic video
//
// Every video frame is real VP8 framing carried in real RTP: a VP8 payload
// descriptor with a 15-bit picture id on every packet, the S bit on the first
// packet of a frame and the RTP marker bit on its last. A frame starts with a
// VP8 frame header (3-byte frame tag; for keyframes the start code 9d 01 2a
// and a 1280x720 size), followed at byte offset [VP8MagicOffset] of the frame
// by the 4-byte magic "halo" and at [VP8TimestampOffset] by the send time as 8
// bytes big-endian Unix nanoseconds, then filler up to the frame size
// (see below). The header, magic and
// timestamp always fit in the first packet of the frame, so a receiver reads
// them from one packet. A Publisher's frames vary in size as an encoder's
// do: keyframes about six times a delta frame, delta frames within +-40 %
// around a slowly drifting level, adding up to the bitrate over a keyframe
// interval. Its audio is Opus-sized, and with AudioDTX talks and pauses
// (comfort noise every 400 ms in silences). NACKs are answered from the
// publisher's own send buffer (Pion's NACK responder), PLI and FIR with a
// keyframe. The Viewer computes one-way latency from that
// timestamp; sender and receiver must share a clock (the same machine).
//
// # What it must not do
//
// It must not import sfu, room, signaling or config, and it must not assume
// anything about the server that docs/protocol.md does not say.
package loadtest
