package room

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/halobuzz/live/sfu"
)

// countingSink is a simulated client: it counts the events it is given, as
// a WebSocket client would enqueue them.
type countingSink struct{ n *atomic.Int64 }

func (s countingSink) Event(Event) { s.n.Add(1) }

// benchRoom fills room "big" with one publisher and size-1 viewers (simulated:
// counted as viewers as a subscriber connection would make them, without
// the connection) and returns the manager and the events counter.
func benchRoom(b *testing.B, size int) (*Manager, *atomic.Int64) {
	b.Helper()
	e, err := sfu.NewEngine(testutil.SFUConfig(true), nil)
	if err != nil {
		b.Fatal(err)
	}
	m := NewManager(e, Options{NodeID: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	b.Cleanup(func() {
		m.Close()
		e.Close()
	})
	var events atomic.Int64
	sink := countingSink{&events}
	if _, err := m.Join("big", ParticipantSpec{Identity: "host", Publish: true}, sink); err != nil {
		b.Fatal(err)
	}
	for i := 1; i < size; i++ {
		p, err := m.Join("big", ParticipantSpec{Identity: fmt.Sprintf("v%d", i), Subscribe: true}, sink)
		if err != nil {
			b.Fatal(err)
		}
		simulateViewer(p)
	}
	return m, &events
}

// BenchmarkJoinViewer is the cost to the room of one viewer joining a room
// of size participants (the join, the joiner's snapshot, being counted as a
// viewer): the caller's CPU and memory, and the events sent to the others
// (events/op; the coalesced viewer count is sent at most once a second to
// everyone, whatever the join rate, so its share per join shrinks as joins
// come faster). None of it may grow with size. The leave is not timed.
func BenchmarkJoinViewer(b *testing.B) { benchmarkViewer(b, true) }

// BenchmarkLeaveViewer is the same for a viewer leaving; the join is not
// timed.
func BenchmarkLeaveViewer(b *testing.B) { benchmarkViewer(b, false) }

func benchmarkViewer(b *testing.B, timeJoin bool) {
	for _, size := range []int{10, 100, 10000} {
		b.Run(fmt.Sprintf("room=%d", size), func(b *testing.B) {
			m, events := benchRoom(b, size)
			var own atomic.Int64
			sink := countingSink{&own}
			events.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if !timeJoin {
					b.StopTimer()
				}
				p, err := m.Join("big", ParticipantSpec{Identity: fmt.Sprintf("j%d", i), Subscribe: true}, sink)
				if err != nil {
					b.Fatal(err)
				}
				_ = p.JoinedState() // taken by the join
				simulateViewer(p)
				if timeJoin {
					b.StopTimer()
				} else {
					b.StartTimer()
				}
				p.Leave()
				if timeJoin {
					b.StartTimer()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(events.Load())/float64(b.N), "events/op")
		})
	}
}

// simulateViewer counts p as a viewer as its subscriber connection would.
func simulateViewer(p *Participant) {
	r := p.room
	r.mu.Lock()
	r.setViewerLocked(p, true)
	r.mu.Unlock()
	r.viewersChanged()
}
