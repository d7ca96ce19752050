// Package signaling is the client-facing edge of a node: the WebSocket JSON
// protocol (docs/protocol.md), WHIP and WHEP, access tokens, limits, health
// endpoints, its own metrics (errors by code, join latency, sockets), the
// server API at /api/v1/ (api*.go, docs/api.md: the rooms of the cluster and
// their moderation, described by docs/openapi.json) and the embedded web
// page, the moderator's page at /admin/ included.
//
// It turns wire messages into calls on package room and room events into wire
// messages, and maps every error to a stable wire code in one place
// (errors.go). It imports room, config and auth, and nothing of sfu: the
// media plane's types and errors reach it in room's vocabulary (room's
// media.go). It must not touch media packets or shared cluster state
// directly: those belong to packages sfu and room.
package signaling
