package cluster

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/id"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// startRedisCluster starts a three-primary Redis Cluster on free loopback
// ports and returns its addresses. Skipped without redis-server/redis-cli.
func startRedisCluster(t *testing.T) []string {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (make deps installs it); skipping the Redis Cluster test", bin)
		}
	}
	var addrs []string
	for i := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		dir := t.TempDir()
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--cluster-enabled", "yes",
			"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a, DisableIdentity: true})
		testutil.Eventually(t, "redis-server "+a+" answers", func() bool { return c.Ping(context.Background()).Err() == nil })
		_ = c.Close()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a, DisableIdentity: true})
		testutil.Eventually(t, "the cluster is up on "+a, func() bool {
			info, err := c.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		_ = c.Close()
	}
	return addrs
}

// The Store contract holds on a Redis Cluster: a room's keys share one slot
// (hash tags), so its MULTI/EXEC writes and scripts work, and pub/sub
// reaches nodes connected to other shards.
func TestStoreContract_RedisCluster(t *testing.T) {
	addrs := startRedisCluster(t)
	runStoreContract(t, func(t *testing.T, ttl time.Duration) func(string) Store {
		prefix := "c" + id.New("")[:6] + ":"
		return func(id string) Store {
			c := NewRedisClient(config.RedisConfig{Addrs: addrs, Timeout: time.Second})
			if _, ok := c.(*redis.ClusterClient); !ok {
				t.Fatalf("several addrs gave a %T, want a cluster client", c)
			}
			t.Cleanup(func() { _ = c.Close() })
			s, err := NewRedisStore(c, prefix, RedisOptions{NodeID: id, TTL: ttl})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	})
}

// startSentinel starts a Redis primary and one Sentinel watching it as
// "halo-primary"; it returns the Sentinel's address.
func startSentinel(t *testing.T) string {
	t.Helper()
	primary := testutil.StartRedis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir := t.TempDir()
	conf := dir + "/sentinel.conf"
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor halo-primary 127.0.0.1 %d 1\n", port, dir, primary.Port())
	if err := writeFile(conf, text); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer sc.Close()
	testutil.Eventually(t, "the Sentinel knows the primary", func() bool {
		a, err := sc.GetMasterAddrByName(context.Background(), "halo-primary").Result()
		return err == nil && len(a) == 2 && a[1] == strconv.Itoa(primary.Port())
	})
	return addr
}

// The Store contract holds through Redis Sentinel (redis.sentinel_master).
func TestStoreContract_RedisSentinel(t *testing.T) {
	sentinel := startSentinel(t)
	runStoreContract(t, func(t *testing.T, ttl time.Duration) func(string) Store {
		prefix := "s" + id.New("")[:6] + ":"
		return func(id string) Store {
			c := NewRedisClient(config.RedisConfig{Addrs: []string{sentinel}, SentinelMaster: "halo-primary", Timeout: time.Second})
			t.Cleanup(func() { _ = c.Close() })
			s, err := NewRedisStore(c, prefix, RedisOptions{NodeID: id, TTL: ttl})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	})
}
