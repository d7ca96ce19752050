package loadtest

import (
	"errors"
	"sync"
	"time"
)

// ChatStats is what became of a viewer's chat messages and reactions, and
// what it received of everyone's in its room.
type ChatStats struct {
	// ChatsSent and ReactionsSent are the messages it sent.
	ChatsSent, ReactionsSent uint64
	// ChatsDelivered and ReactionsDelivered are those that came back to it
	// as events: the server sends every chat and reaction to the whole
	// room, the sender too (docs/protocol.md), so an echo is a delivery.
	ChatsDelivered, ReactionsDelivered uint64
	// Refused counts the error replies to its sends, by error code
	// (room_rate_limited when the room's budget was spent).
	Refused map[string]uint64
	// ChatEvents and ReactionEvents are the events it received from
	// anyone in its room, itself included.
	ChatEvents, ReactionEvents uint64
}

// chatBook keeps a viewer's ChatStats. Events arrive on the signalling
// read goroutine, sends come from the run's: a mutex guards the counts
// (a few messages a second, never per packet).
type chatBook struct {
	mu    sync.Mutex
	self  string         // participant id of the viewer's session
	sent  map[int64]bool // ids of its sends: true for a chat, false for a reaction
	stats ChatStats

	// For judging what the other viewers of its room received
	// (roomDelivery): every participant id the server gave it (a followed
	// redirect gives another), when it joined (first id) and closed, in
	// Unix ns, when each of its sends came back to it, and the events
	// it received by sender.
	ids          []string
	since, until int64
	deliveredAt  []int64
	from         map[string]uint64
}

// joinedAs records the participant id the server gave the viewer: events
// from it are the viewer's own.
func (b *chatBook) joinedAs(participantID string) {
	b.mu.Lock()
	b.self = participantID
	b.ids = append(b.ids, participantID)
	if b.since == 0 {
		b.since = time.Now().UnixNano()
	}
	b.mu.Unlock()
}

// closed records the end of the viewer's stay in its room.
func (b *chatBook) closed() {
	b.mu.Lock()
	if b.until == 0 {
		b.until = time.Now().UnixNano()
	}
	b.mu.Unlock()
}

// errNoChat is returned by SendChat and SendReaction of a viewer without a
// signalling connection (WHEP, or not started).
var errNoChat = errors.New("loadtest: viewer has no signalling connection for chat")

// SendChat sends a chat message to the viewer's room. It does not wait:
// what became of it is in ChatStats (delivered when it comes back, or
// refused).
func (v *Viewer) SendChat(text string) error {
	return v.sendMessage(TypeChat, ChatMessage{Text: text}, true)
}

// SendReaction sends a reaction to the viewer's room; see SendChat.
func (v *Viewer) SendReaction(emoji string) error {
	return v.sendMessage(TypeReaction, Reaction{Emoji: emoji}, false)
}

func (v *Viewer) sendMessage(typ string, data any, chat bool) error {
	conn := v.Conn()
	if conn == nil {
		return errNoChat
	}
	// The id is recorded before the send: a refusal may arrive before
	// send returns.
	id := conn.nextID.Add(1)
	b := &v.chat
	b.mu.Lock()
	if b.sent == nil {
		b.sent = map[int64]bool{}
	}
	b.sent[id] = chat
	b.mu.Unlock()
	if err := conn.send(typ, id, data); err != nil {
		b.mu.Lock()
		delete(b.sent, id)
		b.mu.Unlock()
		return err
	}
	b.mu.Lock()
	if chat {
		b.stats.ChatsSent++
	} else {
		b.stats.ReactionsSent++
	}
	b.mu.Unlock()
	return nil
}

// onChatEvent counts a chat or reaction event, or an error replying to
// one of the viewer's sends. It reports whether env was one of those.
func (b *chatBook) onChatEvent(env Envelope) bool {
	switch env.Type {
	case TypeChat, TypeReaction:
		var from struct {
			ParticipantID string `json:"participant_id"`
		}
		_ = env.Decode(&from) // a malformed event still counts as received
		b.mu.Lock()
		defer b.mu.Unlock()
		own := from.ParticipantID != "" && from.ParticipantID == b.self
		if own {
			b.deliveredAt = append(b.deliveredAt, time.Now().UnixNano())
		} else {
			if b.from == nil {
				b.from = map[string]uint64{}
			}
			b.from[from.ParticipantID]++
		}
		if env.Type == TypeChat {
			b.stats.ChatEvents++
			if own {
				b.stats.ChatsDelivered++
			}
		} else {
			b.stats.ReactionEvents++
			if own {
				b.stats.ReactionsDelivered++
			}
		}
		return true
	case TypeError:
		if env.ID == 0 {
			return false
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.sent[env.ID]; !ok {
			return false
		}
		delete(b.sent, env.ID)
		var pe ProtocolError
		_ = env.Decode(&pe)
		if pe.Code == "" {
			pe.Code = "error"
		}
		if b.stats.Refused == nil {
			b.stats.Refused = map[string]uint64{}
		}
		b.stats.Refused[pe.Code]++
		return true
	}
	return false
}

// ChatStats returns what became of the viewer's chat and reactions so far.
func (v *Viewer) ChatStats() ChatStats {
	b := &v.chat
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	if s.Refused != nil {
		r := make(map[string]uint64, len(s.Refused))
		for k, n := range s.Refused {
			r[k] = n
		}
		s.Refused = r
	}
	return s
}
