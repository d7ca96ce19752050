package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// shardSub is a Redis Cluster subscription to one room's channel: sharded
// pub/sub (SSUBSCRIBE, Redis 7) on the shard owning the room's slot, which
// keeps the order of each publisher's messages (plain PUBLISH in a cluster
// reaches subscribers through the cluster bus from whichever node took it,
// and two messages can overtake each other).
type shardSub struct {
	ps   *redis.PubSub
	done chan struct{}
}

type redisSub struct{ h func([]byte) }

// Publish implements Store. On a Redis Cluster it is SPUBLISH (see shardSub).
func (s *RedisStore) Publish(ctx context.Context, name string, payload []byte) error {
	var err error
	if _, cluster := s.rdb.(*redis.ClusterClient); cluster {
		err = s.rdb.SPublish(ctx, s.channel(name), payload).Err()
	} else {
		err = s.rdb.Publish(ctx, s.channel(name), payload).Err()
	}
	if err != nil {
		return fmt.Errorf("redis store: publish %s: %w", name, err)
	}
	return nil
}

// Subscribe implements Store. One Redis connection carries every
// subscription of the handle; go-redis re-subscribes it after a reconnect
// (messages published while it was down are lost).
func (s *RedisStore) Subscribe(name string, h func([]byte)) (func(), error) {
	ch := s.channel(name)
	sub := &redisSub{h: h}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("name: redis store closed")
	}
	first := len(s.subs[ch]) == 0
	s.subs[ch] = append(s.subs[ch], sub)
	if cc, cluster := s.rdb.(*redis.ClusterClient); cluster {
		if first {
			ctx, cancel := context.WithTimeout(context.Background(), s.ttl)
			ps := cc.SSubscribe(ctx, ch)
			cancel()
			sh := &shardSub{ps: ps, done: make(chan struct{})}
			s.shards[ch] = sh
			go s.dispatch(ps.Channel(redis.WithChannelSize(4096)), sh.done)
		}
		s.mu.Unlock()
		var once sync.Once
		return func() { once.Do(func() { s.unsubscribe(ch, sub) }) }, nil
	}
	ps := s.pubSubLocked()
	s.mu.Unlock()
	if first {
		ctx, cancel := context.WithTimeout(context.Background(), s.ttl)
		err := ps.Subscribe(ctx, ch)
		cancel()
		if err != nil {
			// Kept: go-redis subscribes again when it reconnects.
			s.log.Warn("redis subscribe failed; retried on reconnect", "name", name, "err", err)
		}
	}
	var once sync.Once
	return func() { once.Do(func() { s.unsubscribe(ch, sub) }) }, nil
}

// pubSubLocked returns the connection that carries the handle's
// subscriptions (a single Redis, a Sentinel primary), made on first use.
// s.mu is held.
func (s *RedisStore) pubSubLocked() *redis.PubSub {
	if s.ps == nil {
		s.ps = s.rdb.Subscribe(context.Background())
		s.done = make(chan struct{})
		go s.dispatch(s.ps.Channel(redis.WithChannelSize(4096)), s.done)
	}
	return s.ps
}

// Warm gets the handle ready for its first room: it loads the store's
// scripts (a script Redis does not know yet costs a second round trip, its
// text after the refused hash), and opens the subscription connection,
// subscribed to a channel of the node's own that nothing is published on,
// so that the first room subscribes on an open connection rather than pay
// a new connection's dial and HELLO (480 ms for a node 120 ms from Redis,
// on the path to a far region's first frame). A Redis Cluster's
// subscriptions are per shard and opened as rooms need them.
func (s *RedisStore) Warm(ctx context.Context) error {
	for _, sc := range []*redis.Script{roomScript, claimScript, renewScript, releaseScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("redis store: load scripts: %w", err)
		}
	}
	if _, cluster := s.rdb.(*redis.ClusterClient); cluster {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("room: redis store closed")
	}
	ps := s.pubSubLocked()
	s.mu.Unlock()
	if err := ps.Subscribe(ctx, s.prefix+"node:"+s.node+":idle"); err != nil {
		return fmt.Errorf("redis store: subscription connection: %w", err)
	}
	return nil
}

func (s *RedisStore) unsubscribe(ch string, sub *redisSub) {
	s.mu.Lock()
	list := s.subs[ch]
	for i, x := range list {
		if x == sub {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	last := len(list) == 0
	if last {
		delete(s.subs, ch)
	} else {
		s.subs[ch] = list
	}
	ps := s.ps
	sh := s.shards[ch]
	if last {
		delete(s.shards, ch)
	}
	s.mu.Unlock()
	if last && sh != nil {
		_ = sh.ps.Close()
		<-sh.done
		return
	}
	if last && ps != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.ttl)
		_ = ps.Unsubscribe(ctx, ch)
		cancel()
	}
}

func (s *RedisStore) dispatch(msgs <-chan *redis.Message, done chan struct{}) {
	defer close(done)
	for m := range msgs {
		s.mu.Lock()
		list := s.subs[m.Channel]
		s.mu.Unlock()
		for _, sub := range list {
			sub.h([]byte(m.Payload))
		}
	}
}

// Close implements Store: subscriptions end; the client stays open.
func (s *RedisStore) Close() error {
	s.mu.Lock()
	s.closed = true
	ps, done, shards := s.ps, s.done, s.shards
	s.ps = nil
	s.subs = map[string][]*redisSub{}
	s.shards = map[string]*shardSub{}
	s.mu.Unlock()
	for _, sh := range shards {
		_ = sh.ps.Close()
		<-sh.done
	}
	if ps != nil {
		err := ps.Close()
		<-done
		return err
	}
	return nil
}
