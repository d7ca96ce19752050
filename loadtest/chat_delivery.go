package loadtest

import "time"

// ChatMargin is how much of each end of a viewer's stay in its room the
// judgement of chat received from others leaves out: a message sent as it
// joined or left may fairly miss it (the two sockets of sender and viewer
// are told a few milliseconds apart).
const ChatMargin = time.Second

// chatStay is what roomDelivery needs of one viewer's chatBook.
type chatStay struct {
	room         string
	ids          []string
	since, until int64 // Unix ns; since 0: never joined over WebSocket
	deliveredAt  []int64
	from         map[string]uint64
}

// stay copies what roomDelivery needs; a stay not closed yet ends now.
func (b *chatBook) stay(room string) chatStay {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := chatStay{room: room, ids: b.ids, since: b.since, until: b.until, deliveredAt: b.deliveredAt, from: b.from}
	if s.until == 0 {
		s.until = time.Now().UnixNano()
	}
	return s
}

// roomDelivery judges, for each viewer, the chat and reactions of the
// other viewers of its room: expected counts the messages another viewer
// sent that came back to that sender (the server sent them to the whole
// room) at a moment the viewer was in the room, more than ChatMargin from
// either end of its stay; received how many of them reached it, counted
// per sender (events carry the sender's participant id) and at most the
// sender's expected. A viewer without a signalling connection (WHEP) is
// not judged.
func roomDelivery(stays []chatStay) (expected, received []uint64) {
	expected, received = make([]uint64, len(stays)), make([]uint64, len(stays))
	margin := int64(ChatMargin)
	for i, r := range stays {
		if r.since == 0 {
			continue
		}
		from, to := r.since+margin, r.until-margin
		for j, s := range stays {
			if j == i || s.room != r.room || len(s.deliveredAt) == 0 {
				continue
			}
			var exp uint64
			for _, t := range s.deliveredAt {
				if t >= from && t <= to {
					exp++
				}
			}
			var got uint64
			for _, id := range s.ids {
				got += r.from[id]
			}
			expected[i] += exp
			received[i] += min(got, exp)
		}
	}
	return expected, received
}
