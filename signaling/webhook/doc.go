// Package webhook tells an app backend what happens in the rooms: HTTP
// POSTs signed the Standard Webhooks way (sign.go), delivered at least
// once, in order per room, retried with exponential back-off and jitter up
// to webhooks.max_age (deliver.go).
//
// The rooms tell it what happens on this node (room.Observer, observe.go);
// it turns that into events (event.go) and appends them to a Queue
// (queue.go): in memory and bounded for a node alone (memqueue.go), a Redis
// Stream with a consumer group in a cluster (package redisqueue). The Queue
// is where an event becomes the cluster's: it keeps which nodes serve a
// room and which tracks are live, so room_started and broadcast_started
// are emitted once for the whole cluster, and it numbers each room's
// events.
//
// The package does not import sfu nor any Redis client: the Redis queue
// lives in its own package, which the node wires.
package webhook
