package room

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"

	"github.com/halobuzz/live/config"
	"github.com/redis/go-redis/v9"
)

// NewRedisClient returns the go-redis client for c: a Sentinel failover
// client when SentinelMaster is set (Addrs are the sentinels), a Cluster
// client for several Addrs, a single-server client otherwise. Dial, read and
// write timeouts are c.Timeout, so a Redis that does not answer fails calls
// fast instead of stalling joins.
func NewRedisClient(c config.RedisConfig) redis.UniversalClient {
	quietRedisLog.Do(func() { redis.SetLogger(redisLog{}) })
	opt := &redis.UniversalOptions{
		Addrs:                 c.Addrs,
		MasterName:            c.SentinelMaster,
		Username:              c.Username,
		Password:              c.Password,
		DB:                    c.DB,
		DialTimeout:           c.Timeout,
		ReadTimeout:           c.Timeout,
		WriteTimeout:          c.Timeout,
		MaxRetries:            1,
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
// leases last cluster.node_ttl. close releases it (and its client).
func OpenStore(cfg *config.Config, log *slog.Logger) (store Store, close func(), err error) {
	if len(cfg.Redis.Addrs) == 0 {
		return NewMemoryStore(), func() {}, nil
	}
	rdb := NewRedisClient(cfg.Redis)
	rs, err := NewRedisStore(rdb, cfg.Redis.KeyPrefix, RedisOptions{NodeID: cfg.Node.ID, TTL: cfg.Cluster.NodeTTL, Log: log})
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	return rs, func() {
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
