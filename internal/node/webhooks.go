package node

import (
	"log/slog"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/room"
	"github.com/halobuzz/live/room/cluster"
	"github.com/halobuzz/live/signaling/webhook"
	"github.com/halobuzz/live/signaling/webhook/redisqueue"
	"github.com/prometheus/client_golang/prometheus"
)

// startWebhooks starts the node's webhooks when webhooks.urls is set: a
// queue in memory for a node alone, in Redis for a cluster
// (docs/webhooks.md). stop ends them; it is a no-op without webhooks.
func startWebhooks(cfg *config.Config, rooms *room.Manager, reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	if len(cfg.Webhooks.URLs) == 0 {
		webhook.NewMetrics(reg, nil) // at 0: every node exports what the alert rules read
		return func() {}, nil
	}
	var q webhook.Queue = webhook.NewMemoryQueue(cfg.Webhooks.QueueSize)
	release := func() {}
	wait := cfg.Webhooks.Timeout // alone: what is not delivered at the stop is lost
	if len(cfg.Redis.Addrs) > 0 {
		wait = 0 // another node delivers
		// The cluster's pending deliveries are durable in Redis, on a
		// client of their own: a slow endpoint's backlog never waits
		// behind the rooms' writes, nor they behind it.
		rdb := cluster.NewRedisClient(cfg.Redis)
		rq, err := redisqueue.New(rdb, redisqueue.Options{Prefix: cfg.Redis.KeyPrefix, NodeID: cfg.Node.ID,
			Lease: cfg.Cluster.NodeTTL, Renew: cfg.Cluster.HeartbeatInterval, Log: log})
		if err != nil {
			_ = rdb.Close()
			return nil, err
		}
		rq.Start()
		q, release = rq, func() { rq.Close(); _ = rdb.Close() }
	}
	s, err := webhook.Start(webhook.Options{
		Config: cfg.Webhooks, NodeID: cfg.Node.ID, Region: cfg.Node.Region, Rooms: rooms, Queue: q,
		Registerer: reg, Log: log, NodePoll: cfg.Cluster.HeartbeatInterval, CloseWait: wait,
	})
	if err != nil {
		release()
		return nil, err
	}
	return func() { s.Close(); release() }, nil
}
