package cluster

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// redisClient returns a go-redis client on s as the server builds it, closed when t ends.
func redisClient(t testing.TB, s *testutil.Redis) redis.UniversalClient {
	t.Helper()
	c := NewRedisClient(config.RedisConfig{Addrs: []string{s.Addr()}, Timeout: 300 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// redisNodes returns a function making node handles on srv, each with its
// own client as separate processes would have.
func redisNodes(t *testing.T, srv *testutil.Redis, ttl time.Duration) func(id string) Store {
	prefix := fmt.Sprintf("test%d:", time.Now().UnixNano()%1e6)
	return func(id string) Store {
		s, err := NewRedisStore(redisClient(t, srv), prefix, RedisOptions{NodeID: id, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
