package sfu

import "testing"

// A tap is a viewer without a connection: it starts on the track's cached
// picture like a late joiner, gets every live packet in order, counts as a
// down-track while it runs, and costs nothing once closed.
func TestTap_GetsWhatAViewerGetsAndStopsOnClose(t *testing.T) {
	r := newTestRig(t)
	for s := uint16(10); s < 15; s++ {
		r.feed(s, s == 12)
	}
	w := &recordingWriter{}
	tap, err := r.track.Tap(w)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.track.ViewerCount(); n != 1 {
		t.Fatalf("%d down-tracks with a tap, want 1", n)
	}
	r.feed(15, false)
	r.feed(16, false)
	pkts := w.packets()
	if len(pkts) != 5 {
		t.Fatalf("tap got %d packets, want 12..16 (the cached picture, then live)", len(pkts))
	}
	for i := 1; i < len(pkts); i++ {
		if pkts[i].seq != pkts[i-1].seq+1 {
			t.Fatalf("tap's sequence numbers jump: %d then %d", pkts[i-1].seq, pkts[i].seq)
		}
	}
	tap.Close()
	r.feed(17, false)
	if len(w.packets()) != 5 || r.track.ViewerCount() != 0 {
		t.Fatalf("closed tap still written to (%d packets, %d down-tracks)", len(w.packets()), r.track.ViewerCount())
	}
}
