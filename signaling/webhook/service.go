package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/room"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Service.
type Options struct {
	// Config is the webhooks section; Config.URLs must not be empty.
	Config config.WebhooksConfig
	// NodeID and Region name this node in events.
	NodeID, Region string
	// Rooms is the node's Manager: the Service observes it, reads its
	// rooms' audiences and the registry (node_lost).
	Rooms *room.Manager
	// Queue holds the events: NewMemoryQueue alone, package redisqueue in
	// a cluster.
	Queue Queue
	// Registerer takes the metrics (nil: none).
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// NodePoll is how often the registry is read for lost nodes
	// (cluster.heartbeat_interval); 0: 2s.
	NodePoll time.Duration
	// CloseWait is how long Close waits for the queue to empty (a node
	// alone: what it does not deliver then is lost); 0: it does not wait
	// (a cluster: another node delivers).
	CloseWait time.Duration
}

// Service is a node's webhooks: it observes the rooms, queues their events
// and delivers what the queue gives it. Close stops it.
type Service struct {
	opt    Options
	disp   *dispatcher
	work   *worker
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start observes opt.Rooms and delivers to opt.Config.URLs until Close.
func Start(opt Options) (*Service, error) {
	c := opt.Config
	if len(c.URLs) == 0 {
		return nil, fmt.Errorf("webhooks.urls: none")
	}
	signer, err := NewSigner(c.Secret)
	if err != nil {
		return nil, err
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.NodePoll <= 0 {
		opt.NodePoll = 2 * time.Second
	}
	m := NewMetrics(opt.Registerer, c.URLs)
	d := &dispatcher{node: opt.NodeID, region: opt.Region, viewers: c.ViewerEvents, q: opt.Queue,
		metrics: m, log: opt.Log, wake: make(chan struct{}, 1),
		served: map[string]bool{}, live: map[string]map[string]room.Happening{}}
	if len(c.Events) > 0 {
		d.want = map[string]bool{}
		for _, e := range c.Events {
			d.want[e] = true
		}
	}
	w := &worker{q: opt.Queue, urls: c.URLs, signer: signer, metrics: m, log: opt.Log,
		client: newClient(c.Timeout),
		policy: retryPolicy{initial: c.RetryInitial, max: c.RetryMax, maxAge: c.MaxAge},
		in:     make(chan []Delivery), results: make(chan result, maxInFlight), held: make(chan struct{}, maxHeld)}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{opt: opt, disp: d, work: w, cancel: cancel}
	// What this node held before it started (a crash, a restart with the
	// same node.id) has ended.
	d.push(Op{Forget: opt.NodeID})
	opt.Rooms.SetObserver(d)
	s.wg.Add(4)
	go func() { defer s.wg.Done(); d.run(ctx, c.Timeout) }()
	go func() { defer s.wg.Done(); w.run(ctx) }()
	go func() { defer s.wg.Done(); s.poll(ctx) }()
	go func() { defer s.wg.Done(); s.gauge(ctx, m) }()
	opt.Log.Info("webhooks: delivering", "urls", len(c.URLs), "events", eventsText(c.Events),
		"max_age", c.MaxAge, "viewer_count_interval", c.ViewerCountInterval)
	return s, nil
}

func eventsText(evs []string) string {
	if len(evs) == 0 {
		return "all"
	}
	return fmt.Sprint(evs)
}

// Close stops observing, ends what the node still serves (its tracks
// unpublished, its rooms let go), queues that, waits up to CloseWait for
// the queue to empty and stops delivering. In a cluster what this node
// received and did not deliver is delivered by another node.
func (s *Service) Close() {
	s.opt.Rooms.SetObserver(nil)
	s.disp.closing(time.Now())
	deadline := time.Now().Add(s.opt.CloseWait)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		n, err := s.opt.Queue.Depth(ctx)
		cancel()
		if s.disp.idle() && err == nil && n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.cancel()
	s.wg.Wait()
	s.work.client.CloseIdleConnections()
}

// poll queues viewer counts every webhooks.viewer_count_interval and
// reads the registry for lost nodes.
func (s *Service) poll(ctx context.Context) {
	vc := time.NewTicker(s.opt.Config.ViewerCountInterval)
	defer vc.Stop()
	nodes := time.NewTicker(s.opt.NodePoll)
	defer nodes.Stop()
	last := map[string]int{}
	w := nodeWatch{seen: map[string]room.NodeInfo{}, missing: map[string]int{}}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-vc.C:
			s.disp.viewerCounts(s.opt.Rooms.Rooms(), last, s.opt.Config.ViewerCountInterval, now)
		case now := <-nodes.C:
			rctx, cancel := context.WithTimeout(ctx, s.opt.NodePoll)
			list, err := s.opt.Rooms.Nodes(rctx)
			cancel()
			if err == nil {
				for _, op := range w.update(list, s.opt.NodeID, func(n room.NodeInfo) []byte {
					return s.disp.event(NodeLost, "", now, func(e *Event) { e.LostNode = n.ID })
				}) {
					s.disp.push(op)
				}
			}
		}
	}
}

// gauge keeps halo_webhook_queue_depth.
func (s *Service) gauge(ctx context.Context, m *Metrics) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			if n, err := s.opt.Queue.Depth(rctx); err == nil {
				m.depth.Store(n)
			}
			cancel()
		}
	}
}

// lostAfter is how many registry reads in a row a node must be missing
// from before it is lost: one miss can be a late heartbeat.
const lostAfter = 2

// nodeWatch follows the registry: a node missing from it lostAfter reads
// in a row is lost (node_lost, unless it was draining) and what it held
// ends (ForgetNode).
type nodeWatch struct {
	seen    map[string]room.NodeInfo
	missing map[string]int
}

func (w *nodeWatch) update(list []room.NodeInfo, self string, lostEvent func(room.NodeInfo) []byte) []Op {
	live := map[string]bool{}
	for _, n := range list {
		live[n.ID] = true
		w.seen[n.ID] = n
		delete(w.missing, n.ID)
	}
	var ops []Op
	for id, n := range w.seen {
		if live[id] || id == self {
			continue
		}
		w.missing[id]++
		if w.missing[id] < lostAfter {
			continue
		}
		delete(w.seen, id)
		delete(w.missing, id)
		op := Op{Forget: id}
		if !n.Draining {
			op.Event = lostEvent(n)
			op.Once = "node_lost|" + id + "|" + strconv.FormatInt(n.StartedAt.Unix(), 10)
		}
		ops = append(ops, op)
	}
	return ops
}

// newClient is the deliveries' HTTP client: each attempt bounded by
// timeout, redirects not followed (a 3xx is a failed attempt), and as many
// idle connections kept per endpoint as attempts run at once, so a busy
// endpoint is not redialled for every event.
func newClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = maxInFlight
	return &http.Client{
		Timeout:       timeout,
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
