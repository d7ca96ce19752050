// Package cluster links a node's rooms to the other nodes of a cluster: it
// implements room.Cluster, the port package room defines, and
// internal/node wires it when redis.addrs is set.
//
// It owns the shared state and how it travels:
//   - the Store (store.go) and its implementations: RedisStore (Redis,
//     Sentinel, Redis Cluster; redis_*.go) and MemoryStore (several nodes
//     in one process, for tests and simulations), both held to one
//     contract (store_contract_test.go): leases, atomic origin claims,
//     counters, the node registry, pub/sub;
//   - one ordered write queue per node, sent in batches (batch.go);
//   - the heartbeat (registry.go): the node's registry entry, lease
//     renewal, re-registration of what the store lost, and the loss of
//     nodes missing from the registry;
//   - the cross-node events of each room, their bounds, boot ids and
//     sequence numbers, and reconciliation with the store (pubsub.go);
//   - the index of rooms each node rewrites at its heartbeat, read by the
//     server API's room list (directory.go, redis_index.go);
//   - moderation requests and their answers on a room's channel, and bans
//     in the store (moderation.go).
//
// What it must not do: decide anything about a room. What another node's
// publish, departure or death means for a room's clients, relays and
// republish grace is room's (the Room's Remote* methods); this package
// only reports it. It touches no packet and speaks no client protocol.
package cluster
