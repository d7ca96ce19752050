package node

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/halobuzz/live/config"
	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/webrtc/v4"
)

// narrowLink forwards UDP between one client and the server on loopback,
// the server-to-client direction through a bottleneck of rate bits per
// second with a drop-tail queue of queue worth of data (a 3G link's
// buffer), the other direction as it comes.
type narrowLink struct {
	front  *net.UDPConn
	up     *net.UDPConn
	server *net.UDPAddr
	rate   float64 // bits per second; setRate changes it
	limit  int     // queue bytes

	mu      sync.Mutex
	client  *net.UDPAddr
	queue   [][]byte
	queued  int
	dropped int
	kick    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
}

func startNarrowLink(t *testing.T, server *net.UDPAddr, rate float64, queue time.Duration) *narrowLink {
	t.Helper()
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l := &narrowLink{front: front, up: up, server: server, rate: rate, limit: int(rate / 8 * queue.Seconds()),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	l.wg.Add(3)
	go l.fromClient()
	go l.fromServer()
	go l.drain()
	t.Cleanup(l.close)
	return l
}

func (l *narrowLink) port() int { return l.front.LocalAddr().(*net.UDPAddr).Port }

func (l *narrowLink) fromClient() {
	defer l.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := l.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		l.mu.Lock()
		l.client = from
		l.mu.Unlock()
		_, _ = l.up.WriteToUDP(buf[:n], l.server)
	}
}

func (l *narrowLink) fromServer() {
	defer l.wg.Done()
	for {
		buf := make([]byte, 2048)
		n, _, err := l.up.ReadFromUDP(buf)
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.queued+n > l.limit {
			l.dropped++
		} else {
			l.queue = append(l.queue, buf[:n])
			l.queued += n
		}
		l.mu.Unlock()
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// drain sends the queue at the link's rate.
func (l *narrowLink) drain() {
	defer l.wg.Done()
	next := time.Now()
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.mu.Unlock()
			select {
			case <-l.kick:
				if time.Now().After(next) {
					next = time.Now()
				}
				continue
			case <-l.done:
				return
			}
		}
		pkt := l.queue[0]
		l.queue = l.queue[1:]
		l.queued -= len(pkt)
		client, rate := l.client, l.rate
		l.mu.Unlock()
		if d := time.Until(next); d > 0 {
			select {
			case <-time.After(d):
			case <-l.done:
				return
			}
		}
		if client != nil {
			_, _ = l.front.WriteToUDP(pkt, client)
		}
		next = next.Add(time.Duration(float64(len(pkt)+28) * 8 / rate * float64(time.Second)))
	}
}

// setRate changes the bottleneck's rate (the queue keeps its size in bytes).
func (l *narrowLink) setRate(bps float64) {
	l.mu.Lock()
	l.rate = bps
	l.mu.Unlock()
}

func (l *narrowLink) drops() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

func (l *narrowLink) close() {
	close(l.done)
	_ = l.front.Close()
	_ = l.up.Close()
	l.wg.Wait()
}

// bweViewer is an ordinary Pion viewer (default interceptors: NACKs,
// receiver reports, transport-cc feedback) that records, per video packet,
// its arrival, sequence number and layer.
type bweViewer struct {
	pc *webrtc.PeerConnection
	mu sync.Mutex
	at []time.Time
	sq []uint16
	ly []byte
}

func newBWEViewer(t *testing.T) *bweViewer {
	t.Helper()
	pc := newViewerPC(t)
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	v := &bweViewer{pc: pc}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if len(p.Payload) > 20 {
				v.mu.Lock()
				v.at = append(v.at, time.Now())
				v.sq = append(v.sq, p.SequenceNumber)
				v.ly = append(v.ly, p.Payload[len(p.Payload)-1])
				v.mu.Unlock()
			}
		}
	})
	return v
}

// since summarises the packets that arrived after from: how many of each
// layer, sequence numbers missing (after retransmission), and the longest
// gap between two packets.
func (v *bweViewer) since(from time.Time) (layers [3]int, missing, span int, longest time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var prev time.Time
	seen := map[int64]bool{}
	var lo, hi int64
	var ext int64
	first := true
	for i, at := range v.at {
		// Unwrap sequence numbers in arrival order.
		if i == 0 {
			ext = int64(v.sq[0])
		} else {
			ext += int64(int16(v.sq[i] - v.sq[i-1]))
		}
		if at.Before(from) {
			continue
		}
		layers[v.ly[i]%3]++
		seen[ext] = true
		if first {
			lo, hi, first = ext, ext, false
		}
		lo, hi = min(lo, ext), max(hi, ext)
		if !prev.IsZero() && at.Sub(prev) > longest {
			longest = at.Sub(prev)
		}
		prev = at
	}
	if first {
		return layers, 0, 0, 0
	}
	span = int(hi - lo + 1)
	return layers, span - len(seen), span, longest
}

// Bandwidth adaptation: a simulcast broadcast (about 100 kbit/s, 800 kbit/s
// and 2 Mbit/s) watched by a viewer whose downlink carries 600 kbit/s (a
// 1 s queue, then drops) and by one on an open link. The narrow one
// settles on the low layer without loss or freezes; the open one gets the
// top layer. (HALO_TEST_NO_BWE=1 runs it with sfu.bandwidth_estimation off,
// to see what it guards against: the narrow viewer gets the top layer and
// loses three packets in four.)
func TestBWE_ViewersGetTheLayerTheirLinkCarries(t *testing.T) {
	if testing.Short() {
		t.Skip("thirty seconds of media")
	}
	n := startNode(t, func(c *config.Config) {
		if os.Getenv("HALO_TEST_NO_BWE") != "" {
			c.SFU.BandwidthEstimation = "off"
		}
	})
	publishSimulcastPackets(t, n, "bwe", [3][]int{{250}, {1000, 1000}, {1000, 1000, 1000, 1000, 1000}})
	testutil.Eventually(t, "the simulcast track", func() bool {
		r := n.rooms.Room("bwe")
		return r != nil && len(r.Tracks()) == 1 && len(r.Tracks()[0].Layers) == 3
	})
	narrow, open := newBWEViewer(t), newBWEViewer(t)
	var link *narrowLink
	connectBehindRelay(t, n, narrow.pc, "/whep/bwe", n.token("bwe", "narrow", false, true), func(server *net.UDPAddr) int {
		link = startNarrowLink(t, server, 600_000, time.Second)
		return link.port()
	})
	c := &whipClient{pc: open.pc}
	if resp := c.post(t, n.base+"/whep/bwe", n.token("bwe", "open", false, true)); resp.StatusCode != 201 {
		t.Fatalf("WHEP: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ws := n.viewer(ctx, "bwe", "ws-viewer")
	start := time.Now()
	time.Sleep(20 * time.Second) // converge
	settled := time.Now()
	time.Sleep(12 * time.Second)
	nl, nMiss, nSpan, nGap := narrow.since(settled)
	ol, _, _, _ := open.since(settled)
	t.Logf("narrow link (600 kbit/s): layers %v, %d of %d missing, longest gap %v, link drops %d (since %v)",
		nl, nMiss, nSpan, nGap.Round(time.Millisecond), link.drops(), settled.Sub(start).Round(time.Second))
	t.Logf("open link: layers %v; estimates %v", ol, n.engine.BandwidthEstimates())
	// Mostly the low layer: a probe of the next one (a few hundred
	// milliseconds, less and less often) may fall in the window.
	if low := float64(nl[0]) / float64(max(1, nl[0]+nl[1]+nl[2])); low < 0.85 {
		t.Errorf("the narrow viewer got layers %v in the last 12 s, want the low one (at least 85 %%)", nl)
	}
	if nSpan == 0 || float64(nMiss) >= 0.01*float64(nSpan) {
		t.Errorf("the narrow viewer misses %d of %d packets, want < 1 %%", nMiss, nSpan)
	}
	if nGap > 500*time.Millisecond {
		t.Errorf("the narrow viewer froze for %v", nGap)
	}
	if ol[2] < 9*(ol[0]+ol[1]) {
		t.Errorf("the open viewer got layers %v in the last 12 s, want the top one", ol)
	}

	// The estimate, to the viewer (a stats request) and in the metrics.
	env, err := ws.Conn().Request(ctx, "stats", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Estimate int               `json:"bandwidth_estimate_bps"`
		Layers   map[string]string `json:"layers"`
	}
	if err := env.Decode(&st); err != nil || st.Estimate <= 0 || len(st.Layers) != 1 {
		t.Errorf("stats: %+v (%v), want an estimate and the video's layer", st, err)
	}
	families, err := n.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "halo_viewer_bandwidth_bps" {
			found = true
			if c := f.GetMetric()[0].GetHistogram().GetSampleCount(); c != 3 {
				t.Errorf("halo_viewer_bandwidth_bps counts %d viewers, want 3", c)
			}
		}
	}
	if !found {
		t.Error("no halo_viewer_bandwidth_bps")
	}
}
