package room

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/redis/go-redis/v9"
)

// redisServer is a real redis-server started by a test on a free loopback
// port, in its own directory, without persistence.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

// startRedis starts redis-server, stopped when t ends. Without the binary
// the test is skipped (CI installs it: make deps).
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (make deps installs it); skipping the Redis test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	s := &redisServer{t: t, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir)
	if os.Getenv("HALO_TEST_LOG") != "" {
		s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr(), DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer", s.addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server (SIGKILL: no goodbye to clients, nothing saved).
func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// restart kills the server and starts an empty one on the same port.
func (s *redisServer) restart() {
	s.stop()
	s.start()
}

// client returns a go-redis client as the server builds it, closed when t ends.
func (s *redisServer) client(t testing.TB) redis.UniversalClient {
	t.Helper()
	c := NewRedisClient(config.RedisConfig{Addrs: []string{s.addr()}, Timeout: 300 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// redisNodes returns a function making node handles on srv, each with its
// own client as separate processes would have.
func redisNodes(t *testing.T, srv *redisServer, ttl time.Duration) func(id string) Store {
	prefix := fmt.Sprintf("test%d:", time.Now().UnixNano()%1e6)
	return func(id string) Store {
		s, err := NewRedisStore(srv.client(t), prefix, RedisOptions{NodeID: id, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
