// Package turn is the node's embedded TURN server (RFC 8656) on pion/turn:
// UDP and TCP on one port, TLS on another (or plain TCP behind a load
// balancer that terminates TLS), for viewers and broadcasters whose
// networks block UDP or allow only TLS to 443.
//
// It owns what makes the relay safe to run on a media server:
//
//   - credentials in the TURN REST API / coturn use-auth-secret scheme
//     (username "expiry:identity", password base64(HMAC-SHA1(secret,
//     username))), refused when forged, malformed or expired (auth.go);
//   - a relay toward this node's own media addresses only: permissions,
//     channel binds and every relayed datagram are checked against them,
//     so the server cannot be used as a proxy into the operator's network
//     (loopback, private ranges, link-local, 169.254.169.254, other ports
//     of the node); only another live allocation of the same identity on
//     this server is also reachable (it leads back into this server: the
//     /check page's two connections meet that way), never another
//     identity's; TCP relaying (RFC 6062) is refused (relay.go);
//   - caps on live allocations per identity and per client IP, and a
//     bandwidth cap per allocation (quota.go, relay.go);
//   - certificates read again when their file changes (certs.go);
//   - the media engine's datagrams for a relay taken in the process
//     (HandOff), under the same checks as those the relay socket
//     receives, so that a relayed viewer's media does not cross the kernel
//     twice on its way out (handoff.go);
//   - Prometheus metrics: allocations, refusals by reason, relayed bytes
//     (metrics.go).
//
// It must not know rooms, signalling or the SFU's peers: the node gives it
// the media addresses it may relay to, and signalling issues the
// credentials with the same secret.
package turn
