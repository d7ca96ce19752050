package room

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Admission control (node.max_viewers, node.max_cpu). A node past either
// refuses new participants with ErrNodeFull, which the signalling layer
// answers with a redirect to the least loaded node of the region (FullTarget)
// when the cluster has one, else node_full (retryable). Participants already
// here stay; relays and the republish of a broadcaster already here are not
// refused. The registry carries the node's state (NodeInfo.Full), so that
// other nodes, drains and region redirects send no one here.

// ErrNodeFull refuses a join on a node past node.max_viewers or
// node.max_cpu.
var ErrNodeFull = errors.New("room: this node is full")

// admission measures what the limits are checked against. Counting the
// participants walks every room, so the count is refreshed at most every
// admissionRecount, plus the joins admitted since.
type admission struct {
	mu       sync.Mutex
	countAt  time.Time
	count    int // participants at countAt, plus the joins admitted since
	cpuAt    time.Time
	cpuUsed  time.Duration
	cpuShare float64 // share of the machine's CPUs over the last window, 0..1
}

const (
	admissionRecount = 250 * time.Millisecond
	// cpuWindow is the shortest span the CPU share is measured over.
	cpuWindow = time.Second
)

// full reports whether the node is past a limit, and which; admit counts
// one more join when it is not.
func (m *Manager) full(admit bool) (bool, string) {
	maxV, maxCPU := m.opt.MaxViewers, m.opt.MaxCPU
	if maxV <= 0 && maxCPU <= 0 {
		return false, ""
	}
	a := &m.adm
	now := time.Now()
	if maxV > 0 {
		a.mu.Lock()
		stale := now.Sub(a.countAt) > admissionRecount
		a.mu.Unlock()
		if stale {
			n := m.Stats().Participants
			a.mu.Lock()
			a.count, a.countAt = n, now
			a.mu.Unlock()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if maxCPU > 0 {
		a.sampleCPU(now)
		if a.cpuShare*100 >= float64(maxCPU) {
			return true, "cpu"
		}
	}
	if maxV > 0 && a.count >= maxV {
		return true, "viewers"
	}
	if admit {
		a.count++
	}
	return false, ""
}

// sampleCPU updates the CPU share once a window has passed. a.mu is held.
func (a *admission) sampleCPU(now time.Time) {
	if !a.cpuAt.IsZero() && now.Sub(a.cpuAt) < cpuWindow {
		return
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if !a.cpuAt.IsZero() {
		wall := now.Sub(a.cpuAt)
		a.cpuShare = float64(used-a.cpuUsed) / float64(wall) / float64(runtime.NumCPU())
	}
	a.cpuAt, a.cpuUsed = now, used
}

// Full reports whether the node is past node.max_viewers or node.max_cpu
// (what the registry announces).
func (m *Manager) Full() bool {
	f, _ := m.full(false)
	return f
}

// FullTarget returns the public URL of the node a full node sends new
// joins to: the least loaded live node of this region that is neither full
// nor draining, else of any region; "" when there is none.
func (m *Manager) FullTarget(ctx context.Context) string {
	if m.cluster == nil {
		return ""
	}
	u, _ := m.leastLoaded(ctx, m.Region(), false)
	return u
}

// NodeIn returns the public URL of the least loaded other node of region
// that takes clients (not draining, not full), or "": none, alone, or the
// registry cannot be read. Region routing sends clients there.
func (m *Manager) NodeIn(ctx context.Context, region string) string {
	if m.cluster == nil {
		return ""
	}
	u, _ := m.leastLoaded(ctx, region, true)
	return u
}

// leastLoaded returns the public URL of the least loaded other node that
// takes clients (not draining, not full): of region only, or preferring
// it; "" when there is none, with an error when the registry cannot be
// read.
func (m *Manager) leastLoaded(ctx context.Context, region string, only bool) (string, error) {
	nodes, err := m.cluster.Nodes(ctx)
	if err != nil {
		return "", err
	}
	var best *NodeInfo
	better := func(n, than *NodeInfo) bool {
		same, thanSame := strings.EqualFold(n.Region, region), strings.EqualFold(than.Region, region)
		if same != thanSame {
			return same
		}
		if n.Viewers != than.Viewers {
			return n.Viewers < than.Viewers
		}
		return n.ID < than.ID
	}
	for i := range nodes {
		n := &nodes[i]
		if n.ID == m.opt.NodeID || n.PublicURL == "" || n.Draining || n.Full {
			continue
		}
		if only && !strings.EqualFold(n.Region, region) {
			continue
		}
		if best == nil || better(n, best) {
			best = n
		}
	}
	if best == nil {
		return "", nil
	}
	return best.PublicURL, nil
}
