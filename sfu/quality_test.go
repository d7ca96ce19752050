package sfu

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// A viewer's receiver report reaches the quality observer as loss, jitter
// in time and RTT; blocks about the viewer's other tracks (a compound report
// reaches every sender it names) and reports from a relay do not.
func TestQuality_ReceiverReportsReachTheObserver(t *testing.T) {
	r := newTestRig(t)
	d := r.addViewer() // SSRC 7, VP8 at 90 kHz
	var mu sync.Mutex
	var got []ViewerReport
	r.track.engine.SetQualityObserver(func(v ViewerReport) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, v)
	})
	now := time.Now()
	readViewerReport(d, &rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{
		{SSRC: 7, FractionLost: 64, Jitter: 900, LastSenderReport: ntpMiddle(now.Add(-50 * time.Millisecond))},
		{SSRC: 8, FractionLost: 255, Jitter: 90000}, // the viewer's audio: another sender's
	}}, now)
	relay := r.addViewer()
	relay.relay = true
	readViewerReport(relay, &rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{{SSRC: 7, FractionLost: 128}}}, now)

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("observer got %d reports, want 1: %+v", len(got), got)
	}
	v := got[0]
	if v.Kind != webrtc.RTPCodecTypeVideo || v.Loss != 0.25 || v.Jitter != 10*time.Millisecond {
		t.Errorf("report = %+v, want video, loss 0.25, jitter 10ms", v)
	}
	if v.RTT < 49*time.Millisecond || v.RTT > 51*time.Millisecond {
		t.Errorf("RTT = %v, want 50ms", v.RTT)
	}
	if d.RTT() != v.RTT {
		t.Errorf("the NACK guard's RTT %v differs from the reported %v", d.RTT(), v.RTT)
	}
}

// readViewerReport is what readViewerRTCP does with a receiver report.
func readViewerReport(d *DownTrack, rr *rtcp.ReceiverReport, now time.Time) {
	for _, r := range rr.Reports {
		d.handleReceiverReport(r, now)
	}
}

// failingWriter is a viewer's transport whose writes fail once broken is set.
type failingWriter struct {
	recordingWriter
	broken atomic.Bool
}

func (w *failingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.broken.Load() {
		return 0, errors.New("broken")
	}
	return w.recordingWriter.WriteRTP(h, payload)
}

// A watching viewer sent nothing for a second freezes once, whatever the
// number of looks: "delivery" while the track is fed (its writes fail),
// "source" when the track itself stopped. It can freeze again only after
// it got packets again.
func TestQuality_FreezesAreCountedOncePerFreezeByCause(t *testing.T) {
	r := newTestRig(t)
	e := r.track.engine
	a := r.addViewer()
	fw := &failingWriter{}
	b := newDownTrack(r.track)
	b.bind.Store(&binding{ssrc: 9, pt: 96, writer: fw})
	r.track.addDown(b)
	seq := uint16(1)
	feedFor := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); seq++ {
			r.feed(seq, seq == 1)
			time.Sleep(20 * time.Millisecond)
		}
	}
	freezes := func() [freezeCauses]uint64 { return e.QualityStats().Freezes }

	feedFor(100 * time.Millisecond)
	e.checkFreezes(monoNow())
	if f := freezes(); f != [freezeCauses]uint64{} {
		t.Fatalf("freezes while both viewers get every packet: %v", f)
	}

	fw.broken.Store(true) // b's transport fails; the track goes on
	feedFor(freezeAfter + 200*time.Millisecond)
	e.checkFreezes(monoNow())
	e.checkFreezes(monoNow())
	if f := freezes(); f[FreezeDelivery] != 1 || f[FreezeSource] != 0 {
		t.Fatalf("after b's writes failed for a second: %v, want one delivery freeze", f)
	}

	// The broadcaster stalls: a freezes too, for want of a source; b is
	// still in the freeze already counted.
	time.Sleep(freezeAfter + 100*time.Millisecond)
	e.checkFreezes(monoNow())
	e.checkFreezes(monoNow())
	if f := freezes(); f[FreezeDelivery] != 1 || f[FreezeSource] != 1 {
		t.Fatalf("after the source stalled: %v, want one delivery and one source freeze", f)
	}

	// The stream comes back and stalls again: a freezes a second time.
	feedFor(100 * time.Millisecond)
	e.checkFreezes(monoNow())
	time.Sleep(freezeAfter + 100*time.Millisecond)
	e.checkFreezes(monoNow())
	if f := freezes(); f[FreezeSource] != 2 {
		t.Fatalf("after a second stall: %v, want 2 source freezes", f)
	}

	// A viewer that left is not looked at any more.
	r.track.removeDown(a)
	r.track.removeDown(b)
	e.q.mu.Lock()
	left := len(e.q.watched)
	e.q.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d down-tracks still watched after their viewers left", left)
	}
}
