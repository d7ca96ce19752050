// Package redisqueue is the webhooks' Queue of a cluster (webhook.Queue),
// on the Redis the nodes share: the pending deliveries are durable, and a
// node that dies with deliveries pending loses none.
//
// The queue is split into partitions, a room's events all in one (by a
// hash of its name): a Redis Stream with a consumer group, and next to it,
// in the same hash slot, the room's sequence numbers, the memberships
// (which nodes serve a room, which tracks are live) and the Once keys. One
// Lua script appends an op: it checks the Once key, changes the
// membership, numbers the events and adds them to the stream, atomically,
// so two nodes starting the same room at once emit one room_started.
//
// Each partition is delivered by one node at a time, its owner, under a
// lease the owner renews (cluster.heartbeat_interval) and that ends
// cluster.node_ttl after the owner stops: then another node takes the
// partition, claims what the dead owner had received and not acknowledged
// (XAUTOCLAIM), and delivers it, in order, before anything newer. A room's
// events so keep their order across the takeover; a receiver may get the
// last few twice (at least once).
//
// It lives apart from package webhook so that webhook imports no Redis
// client, and under signaling rather than room/cluster because the
// webhooks are not room state: room/cluster stays the rooms' port.
package redisqueue
