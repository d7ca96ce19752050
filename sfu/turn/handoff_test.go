package turn

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// The media port's datagrams handed over in the process reach the client
// as if they had crossed the relay socket: from the media address, through
// the client's permission. A hand-off naming any other source is dropped
// like a datagram from it would be; an address that is not a live relay is
// not taken (the engine sends it through the network).
func TestHandOff_DeliversTheNodesDatagramsAndNothingElse(t *testing.T) {
	r := newRig(t, nil)
	c := r.client(creds(testSecret, "alice", time.Now().Add(time.Hour)))
	relay, err := allocate(t, c)
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	defer relay.Close()
	// The client's permission toward the media address: its first datagram.
	if _, err := relay.WriteTo([]byte("hello"), r.media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_, from := readWithin(r.media, 5*time.Second)
	if from == nil {
		t.Fatal("the media port got nothing through the relay")
	}
	relayAddr := from.(*net.UDPAddr).AddrPort()
	media := r.media.LocalAddr().(*net.UDPAddr).AddrPort()
	other := r.other.LocalAddr().(*net.UDPAddr).AddrPort()

	if !r.s.IsRelay(relayAddr) || r.s.IsRelay(media) {
		t.Fatalf("IsRelay(relay %v) = %v, IsRelay(media %v) = %v", relayAddr, r.s.IsRelay(relayAddr), media, r.s.IsRelay(media))
	}
	if r.s.HandOff(media, media, []byte("not a relay")) {
		t.Fatal("HandOff took a datagram for an address that is no relay")
	}
	if !r.s.HandOff(relayAddr, other, []byte("from-other-port")) || !r.s.HandOff(relayAddr, media, []byte("from-media")) {
		t.Fatal("HandOff did not take the datagrams for a live relay")
	}
	got, src := readWithin(relay, 5*time.Second)
	if !bytes.Equal(got, []byte("from-media")) || src.String() != media.String() {
		t.Fatalf("client got %q from %v, want from-media from %v", got, src, media)
	}
	if got, _ := readWithin(relay, 300*time.Millisecond); got != nil {
		t.Fatalf("client got %q as well: a hand-off from another port passed", got)
	}
	if n := r.refusals(ReasonInbound); n < 1 {
		t.Fatalf("refusals{reason=inbound_not_node} = %v, want the hand-off from another port", n)
	}

	// Once the allocation is gone its address is no relay any more.
	_ = relay.Close()
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for r.s.IsRelay(relayAddr) {
		if time.Now().After(deadline) {
			t.Fatal("the relay address is still a relay after its allocation closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.s.HandOff(relayAddr, media, []byte("late")) {
		t.Fatal("HandOff took a datagram for a closed allocation")
	}
}
