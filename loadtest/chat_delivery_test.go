package loadtest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// A viewer's chat book keeps what judging the others' deliveries needs:
// its ids, its stay, when its own messages came back, and the events of
// others by sender.
func TestChatBook_KeepsOwnEchoesAndOthersEventsBySender(t *testing.T) {
	var b chatBook
	event := func(typ, from string) Envelope {
		data, _ := json.Marshal(map[string]string{"participant_id": from, "text": "hi", "emoji": "🔥"})
		return Envelope{V: 1, Type: typ, Data: data}
	}
	before := time.Now().UnixNano()
	b.joinedAs("pa")
	for _, e := range []Envelope{event(TypeChat, "pa"), event(TypeReaction, "pa"), event(TypeChat, "pb"),
		event(TypeReaction, "pb"), event(TypeChat, "pc")} {
		if !b.onChatEvent(e) {
			t.Fatalf("%s not taken", e.Type)
		}
	}
	b.joinedAs("pa2") // a followed redirect
	b.closed()
	s := b.stay("room")
	if !slices.Equal(s.ids, []string{"pa", "pa2"}) || s.since < before || s.until < s.since || len(s.deliveredAt) != 2 ||
		s.from["pb"] != 2 || s.from["pc"] != 1 || s.from["pa"] != 0 {
		t.Fatalf("stay %+v", s)
	}
}

// Each viewer is judged on the messages of the other viewers of its room
// delivered while it was there (ChatMargin inside either end of its stay):
// another room's, its own, those at the edges of its stay are not
// expected; a sender's several ids count as one; extra events do not make
// up for a missing sender's; a viewer without chat is not judged.
func TestRoomDelivery_JudgesEachViewerOnTheOthersOfItsRoom(t *testing.T) {
	s := int64(time.Second)
	t0 := 100 * s // Unix time 0 means never joined
	at := func(secs ...float64) []int64 {
		var out []int64
		for _, x := range secs {
			out = append(out, int64((100+x)*float64(s)))
		}
		return out
	}
	stays := []chatStay{
		// a sends 3 (at 4.5, 10, 19.5 s); stays 0..20 s; got 2 of b's, 9 of c's
		{room: "r", ids: []string{"a"}, since: t0, until: t0 + 20*s, deliveredAt: at(4.5, 10, 19.5), from: map[string]uint64{"b": 2, "c": 9}},
		// b sends 2 (at 6 s, and at 12 s under its redirected id); joined at 4 s: a's message at 4.5 s is inside its margin
		{room: "r", ids: []string{"b", "b2"}, since: t0 + 4*s, until: t0 + 20*s, deliveredAt: at(6, 12), from: map[string]uint64{"a": 1}},
		// c sends none; got a's 3 and b's 2 (one under each id)
		{room: "r", ids: []string{"c"}, since: t0, until: t0 + 20*s, from: map[string]uint64{"a": 3, "b": 1, "b2": 1}},
		// another room: expects nothing of r's
		{room: "other", ids: []string{"d"}, since: t0, until: t0 + 20*s, deliveredAt: at(7)},
		// WHEP: no chat, not judged
		{room: "r"},
	}
	exp, got := roomDelivery(stays)
	// a: b's 2 (6, 12 s) and c's none; b: a's at 10 s only (4.5 s is before 4+1, 19.5 s after 20-1), c none;
	// c: a's 4.5 and 10 s (19.5 s is after 19 s), b's 2.
	if want := []uint64{2, 1, 4, 0, 0}; !slices.Equal(exp, want) {
		t.Fatalf("expected %v, want %v", exp, want)
	}
	if want := []uint64{2, 1, 4, 0, 0}; !slices.Equal(got, want) {
		t.Fatalf("received %v, want %v", got, want)
	}
	stays[0].from = map[string]uint64{"c": 9} // a got none of b's: c's events do not make up for them
	stays[2].from = map[string]uint64{"a": 3, "b2": 1}
	exp, got = roomDelivery(stays)
	if !slices.Equal(exp, []uint64{2, 1, 4, 0, 0}) || !slices.Equal(got, []uint64{0, 1, 3, 0, 0}) {
		t.Fatalf("expected %v, received %v", exp, got)
	}
}

// Messages the other viewers missed fail the run with a sentence naming
// the worst room, and the table and the per-room breakdown show them.
func TestReport_ChatMissedByOthersFailsTheRun(t *testing.T) {
	r := &Report{PerViewer: []ViewerRecord{
		{Identity: "a", Room: "r1", Outcome: OutcomeConnected, ChatsSent: 3, ChatsDelivered: 3, ChatEvents: 6, ToOthersExpected: 3, ToOthersReceived: 3},
		{Identity: "b", Room: "r1", Outcome: OutcomeConnected, ChatsSent: 3, ChatsDelivered: 3, ChatEvents: 4, ToOthersExpected: 3, ToOthersReceived: 1},
		{Identity: "c", Room: "r2", Outcome: OutcomeConnected, ChatsSent: 1, ChatsDelivered: 1, ChatEvents: 1, ToOthersExpected: 2, ToOthersReceived: 1},
		{Identity: "d", Room: "r2", Outcome: OutcomeConnected, ChatsSent: 2, ChatsDelivered: 2, ChatEvents: 3, ToOthersExpected: 1, ToOthersReceived: 1},
	}}
	r.aggregate()
	m := r.Messages
	if m.ToOthersExpected != 9 || m.ToOthersReceived != 6 || m.ToOthersLost != 3 || m.Lost != 0 {
		t.Fatalf("totals %+v", m)
	}
	want := "the other viewers of their room missed 3 of 9 chat messages and reactions they were to receive (delivered to the sender while they were in the room); room r1 missed 2 of 6"
	if err := r.Check(Limits{}); err == nil || err.Error() != want {
		t.Fatalf("err %v\nwant %q", err, want)
	}
	var text strings.Builder
	_ = r.WriteText(&text)
	for _, line := range []string{
		"the other viewers of each room received 6 of the 9 messages they were to receive (3 missed)",
		"4 of 6", "2 of 3",
	} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, text.String())
		}
	}
	r.PerViewer[1].ToOthersReceived, r.PerViewer[2].ToOthersReceived = 3, 2
	r.aggregate()
	if err := r.Check(Limits{}); err != nil {
		t.Fatalf("every message reached the others: %v", err)
	}
}
