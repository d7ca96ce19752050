package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/redis/go-redis/v9"
)

// redisMinIdleConns is how many idle connections to Redis (per server of a
// Redis Cluster) each node keeps open: the join path, the store writer and
// the heartbeat each read or write on one at the same time.
const redisMinIdleConns = 4

// NewRedisClient returns the go-redis client for c: a Sentinel failover
// client when SentinelMaster is set (Addrs are the sentinels), a Cluster
// client for several Addrs, a single-server client otherwise. Dial, read and
// write timeouts are c.Timeout, so a Redis that does not answer fails calls
// fast instead of stalling joins.
func NewRedisClient(c config.RedisConfig) redis.UniversalClient {
	quietRedisLog.Do(func() { redis.SetLogger(redisLog{}) })
	opt := &redis.UniversalOptions{
		Addrs:        c.Addrs,
		MasterName:   c.SentinelMaster,
		Username:     c.Username,
		Password:     c.Password,
		DB:           c.DB,
		DialTimeout:  c.Timeout,
		ReadTimeout:  c.Timeout,
		WriteTimeout: c.Timeout,
		MaxRetries:   1,
		// Connections kept open, so that a join or a relay reading the
		// shared state does not first pay a new connection's round trips
		// (dial and HELLO: 480 ms for a node 120 ms from Redis).
		MinIdleConns:          redisMinIdleConns,
		DisableIdentity:       true,
		ContextTimeoutEnabled: true,
	}
	if c.SentinelMaster != "" {
		opt.SentinelPassword = c.SentinelPassword // "" reaches the Sentinels without AUTH
	}
	if c.TLS {
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return redis.NewUniversalClient(opt)
}

// OpenStore returns the Store cfg names: the memory store when redis.addrs
// is empty (the node serves alone), else a Redis store for node.id whose
// leases last cluster.node_ttl. release lets go of it (and its client).
func OpenStore(cfg *config.Config, log *slog.Logger) (store Store, release func(), err error) {
	if len(cfg.Redis.Addrs) == 0 {
		return NewMemoryStore(), func() {}, nil
	}
	rdb := NewRedisClient(cfg.Redis)
	rs, err := NewRedisStore(rdb, cfg.Redis.KeyPrefix, RedisOptions{NodeID: cfg.Node.ID, TTL: cfg.Cluster.NodeTTL, Log: log})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	// Best effort: if Redis cannot be reached now, the first room opens the
	// subscription connection, as before.
	warmCtx, stopWarm := context.WithTimeout(context.Background(), 4*max(cfg.Redis.Timeout, 100*time.Millisecond))
	warmed := make(chan struct{})
	go func() {
		defer close(warmed)
		if err := rs.Warm(warmCtx); err != nil {
			log.Debug("cluster: subscription connection not opened ahead", "err", err)
		}
	}()
	return rs, func() {
		stopWarm()
		<-warmed
		_ = rs.Close()
		_ = rdb.Close()
	}, nil
}

// quietRedisLog routes go-redis's own log (one line per failed dial while
// Redis is down) to slog at debug level: the node logs outages itself, once.
var quietRedisLog sync.Once

type redisLog struct{}

func (redisLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
