package sfu

import (
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
)

// Issue 23 item 2: a node that resumes after a stall (SIGSTOP, a VM
// pause, a long GC) reads what waited in its sockets before it judges any
// connection dead. The sender-report loop's clock is driven by hand here:
// the loop is stopped and its rounds run at chosen times, the second one
// 20 s after the first, as the first tick after a 20 s stop comes. The
// handed-over viewer, whose last packet is as old as the stop, is not
// failed; a viewer that really is gone still is, a silence timeout after
// the resume.
func TestHandoff_ResumingAfterAStallDoesNotFailTheViewer(t *testing.T) {
	e := newLoopbackEngine(t)
	tr, _ := feedTrack(t, e, 100, 50)
	v := newPionViewer(t, e, tr)
	<-v.started
	waitHandedOver(t, e, 1)
	e.stopSenderReports() // the test runs the rounds
	h := v.sub.handed.Load()

	t0 := monoNow()
	e.reportRound(t0, time.Now())
	stall := int64(20 * time.Second)
	if stall <= e.handedOff.silence.Load() {
		t.Fatal("the stall must be longer than the silence timeout")
	}
	e.reportRound(t0+stall, time.Now().Add(time.Duration(stall)))
	if h.gone.Load() || e.Stats().Subscribers != 1 {
		t.Fatal("the viewer was failed on the first tick after the stall, before its waiting packets were read")
	}
	at := len(v.received())
	testutil.Eventually(t, "the viewer stopped getting media after the stall", func() bool { return len(v.received()) > at+50 })

	// The viewer goes away for real: it sends nothing more. On-time rounds
	// after the resume fail it once the silence timeout has passed since
	// the resume, and not before.
	if err := v.pc.SCTP().Transport().ICETransport().Stop(); err != nil {
		t.Fatal(err)
	}
	silence := e.handedOff.silence.Load()
	for m := t0 + stall + int64(time.Second); m <= t0+stall+silence+int64(2*time.Second); m += int64(time.Second) {
		e.reportRound(m, time.Now())
		if m-(t0+stall) <= silence && h.gone.Load() {
			t.Fatalf("the viewer failed %s after the resume, before the silence timeout", time.Duration(m-(t0+stall)))
		}
	}
	testutil.Eventually(t, "the viewer gone after the resume was never failed", func() bool { return e.Stats().Subscribers == 0 })
	if n := e.q.ice[ICERoleViewer][ICEStageEstablished].Load(); n != 1 {
		t.Fatalf("the gone viewer counted as %d ICE failures, want 1", n)
	}
}
