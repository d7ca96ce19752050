package sfu

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// BenchmarkForwarderHop measures what handing each packet from the track's
// reader to its forwarder goroutine costs, at a live stream's pace rather
// than in a tight loop: packets arrive one at a time, 1 ms apart (a
// 2.5 Mbit/s video track is ~280 packets/s, so the forwarder is parked
// when each one arrives and must be woken). "inline" forwards on the
// reader's goroutine, as the reader did before the forwarder existed;
// "forwarder" lets the track's forwarder goroutine do it, as in
// production. cpu-ns/in is process CPU time per packet from the publisher,
// the 1 ms sleep included in both; the difference between the two is the
// hop, paid once per incoming packet whatever the audience.
func BenchmarkForwarderHop(b *testing.B) {
	for _, n := range []int{1, 20} {
		for _, mode := range []string{"inline", "forwarder"} {
			b.Run(fmt.Sprintf("viewers=%d/%s", n, mode), func(b *testing.B) {
				rig := newFanoutRig(b, n, true)
				defer rig.close()
				t := rig.track
				pkts := make([][]byte, 64)
				for i := range pkts {
					pkts[i] = vp8Packet(uint16(i), uint32(i/8)*3000, i == 0)
				}
				var h rtp.Header
				t.ingest(pkts[0], &h)
				t.pump()
				if mode == "forwarder" {
					t.start()
					defer t.end()
				}
				fwd0 := t.engine.stats.packetsForwarded.Load()
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				for i := range b.N {
					time.Sleep(time.Millisecond)
					pkt := pkts[1+i%63]
					binary.BigEndian.PutUint16(pkt[2:], uint16(i+1))
					t.ingest(pkt, &h)
					if mode == "inline" {
						t.pump()
					}
				}
				want := fwd0 + uint64(b.N*n)
				for t.engine.stats.packetsForwarded.Load() < want {
					time.Sleep(100 * time.Microsecond)
				}
				b.StopTimer()
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/in")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
