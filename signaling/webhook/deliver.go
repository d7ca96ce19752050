package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// The worker delivers what the Queue gives this node: each event to every
// URL, at least once. A room's events go one after the other, in their
// sequence: the next waits until the one before was delivered to every URL
// or expired (webhooks.max_age). Rooms do not wait for each other. A
// failed attempt (no answer within webhooks.timeout, or not a 2xx) is
// retried after a back-off that doubles from webhooks.retry_initial up to
// webhooks.retry_max, with jitter (each wait is 50-100 % of that), so that
// the retries of many rooms do not come back at once.

// maxHeld bounds the events a worker holds received and not yet acked.
const maxHeld = 4096

// maxInFlight bounds the attempts under way at once (each POSTs to every
// URL not yet served, one after the other).
const maxInFlight = 16

type retryPolicy struct {
	initial, max, maxAge time.Duration
}

// backoff is the wait after the n-th failed attempt (n >= 1).
func (p retryPolicy) backoff(n int) time.Duration {
	d := p.initial
	for i := 1; i < n && d < p.max; i++ {
		d *= 2
	}
	d = min(d, p.max)
	return d/2 + rand.N(d/2+1)
}

type pending struct {
	d        Delivery
	body     []byte
	ev       Event
	done     []bool // per URL
	attempts int
}

type lane struct {
	items []*pending
	busy  bool
	due   time.Time
}

type result struct {
	room     string
	finished bool // delivered everywhere, expired or undeliverable: acked
}

type worker struct {
	q       Queue
	urls    []string
	client  *http.Client
	signer  *Signer
	policy  retryPolicy
	metrics *Metrics
	log     *slog.Logger

	in      chan []Delivery
	results chan result   // buffered maxInFlight: an attempt never waits to report
	held    chan struct{} // a token per event held
	wg      sync.WaitGroup
}

// run receives and delivers until ctx ends.
func (w *worker) run(ctx context.Context) {
	w.wg.Add(1)
	go func() { defer w.wg.Done(); w.receive(ctx) }()
	lanes := map[string]*lane{}
	inFlight := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		next := now.Add(time.Hour)
		for room, l := range lanes {
			if l.busy {
				continue
			}
			if len(l.items) == 0 {
				delete(lanes, room)
				continue
			}
			if l.due.After(now) {
				next = minTime(next, l.due)
				continue
			}
			if inFlight >= maxInFlight {
				continue
			}
			l.busy = true
			inFlight++
			p := l.items[0]
			w.wg.Add(1)
			go func() { defer w.wg.Done(); w.results <- w.attempt(ctx, room, p) }()
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			w.wg.Wait()
			return
		case ds := <-w.in:
			for _, d := range ds {
				l := lanes[d.Room]
				if l == nil {
					l = &lane{}
					lanes[d.Room] = l
				}
				l.items = append(l.items, w.prepare(d))
			}
		case r := <-w.results:
			inFlight--
			l := lanes[r.room]
			l.busy = false
			if r.finished {
				l.items[0] = nil
				l.items = l.items[1:]
				l.due = time.Time{}
				<-w.held
			} else {
				l.due = time.Now().Add(w.policy.backoff(l.items[0].attempts))
			}
		case <-timer.C:
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// receive takes events from the queue while the worker holds fewer than
// maxHeld.
func (w *worker) receive(ctx context.Context) {
	failing := false // log once per outage of the queue
	for ctx.Err() == nil {
		select {
		case w.held <- struct{}{}: // room for one at least
		case <-ctx.Done():
			return
		}
		free := 1
		for free < 256 {
			select {
			case w.held <- struct{}{}:
				free++
				continue
			default:
			}
			break
		}
		ds, err := w.q.Receive(ctx, free)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				w.log.Warn("webhooks: cannot read the queue; retrying", "err", err)
			}
			failing = true
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		case err == nil && failing:
			failing = false
			w.log.Info("webhooks: the queue answers again")
		}
		for range free - len(ds) {
			<-w.held
		}
		if len(ds) > 0 {
			select {
			case w.in <- ds:
			case <-ctx.Done():
				return
			}
		}
	}
}

// prepare decodes a received event once: its body is the same on every
// attempt.
func (w *worker) prepare(d Delivery) *pending {
	p := &pending{d: d, done: make([]bool, len(w.urls))}
	body, ev, err := d.body()
	if err != nil {
		w.log.Error("webhooks: dropping an event that does not decode", "err", err)
		for i := range p.done {
			p.done[i] = true
		}
	}
	p.body, p.ev = body, ev
	return p
}

// attempt posts p to every URL that has not taken it yet, and acks it
// when all have or it is too old.
func (w *worker) attempt(ctx context.Context, room string, p *pending) result {
	if !w.q.Owns(p.d) {
		// Another node took this part of the queue over and delivers it:
		// let it go, unacknowledged.
		return result{room: room, finished: true}
	}
	p.attempts++
	all := true
	for i, u := range w.urls {
		if p.done[i] {
			continue
		}
		if err := w.post(ctx, u, p); err != nil {
			all = false
			if ctx.Err() != nil {
				return result{room: room} // stopping: not a failure of the endpoint
			}
			w.metrics.delivered(u, "failed", 0)
			w.log.Debug("webhooks: delivery failed", "url", u, "event", p.ev.ID, "type", p.ev.Type,
				"room", room, "attempt", p.attempts, "err", err)
			continue
		}
		p.done[i] = true
		w.metrics.delivered(u, "delivered", time.Since(p.ev.Time))
	}
	if !all && time.Since(p.ev.Time) < w.policy.maxAge {
		return result{room: room}
	}
	if !all {
		for i, u := range w.urls {
			if !p.done[i] {
				w.metrics.delivered(u, "expired", 0)
			}
		}
		w.log.Warn("webhooks: event expired undelivered (webhooks.max_age)", "event", p.ev.ID, "type", p.ev.Type,
			"room", room, "attempts", p.attempts)
	}
	if err := w.q.Ack(ctx, p.d); err != nil && ctx.Err() == nil {
		w.log.Warn("webhooks: cannot acknowledge a delivered event; it may be delivered again", "event", p.ev.ID, "err", err)
	}
	return result{room: room, finished: true}
}

// post sends one signed delivery; only a 2xx answer counts.
func (w *worker) post(ctx context.Context, url string, p *pending) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(p.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "HaloBuzz-Live-Webhooks/1")
	w.signer.Headers(req.Header, p.ev.ID, time.Now(), p.body)
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
