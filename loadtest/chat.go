package loadtest

import (
	"math/rand/v2"
	"time"
)

// chatEvery is how often the run draws chat messages and reactions.
const chatEvery = 200 * time.Millisecond

// chatClock ticks the run's chat; c is nil (never ready) when the plan has
// no chat.
type chatClock struct {
	c <-chan time.Time
	t *time.Ticker
}

func (c chatClock) stop() {
	if c.t != nil {
		c.t.Stop()
	}
}

func (r *run) chatTicker() chatClock {
	if r.plan.ChatPerMinute <= 0 && r.plan.ReactionsPerMinute <= 0 {
		return chatClock{}
	}
	t := time.NewTicker(chatEvery)
	return chatClock{c: t.C, t: t}
}

// reactions the viewers send.
var emojis = []string{"❤️", "👏", "😂", "🔥", "😮"}

// chat sends, from each connected WebSocket viewer, a chat message and a
// reaction with the probability their per-minute rate gives over one tick
// (a Poisson process sampled every chatEvery). Sends do not wait for
// replies: each viewer's ChatStats says which came back to it (delivered)
// and which the server refused (its rate limits).
func (r *run) chat(time.Time) {
	pChat := r.plan.ChatPerMinute * chatEvery.Minutes()
	pReact := r.plan.ReactionsPerMinute * chatEvery.Minutes()
	for _, rv := range r.viewers {
		if rv.state.Load() != stateConnected {
			continue
		}
		v := rv.v.Load()
		if v.Conn() == nil { // WHEP viewers have no chat
			continue
		}
		if pChat > 0 && rand.Float64() < pChat {
			if err := v.SendChat("hello from " + rv.plan.Identity); err == nil {
				r.chats.Add(1)
			}
		}
		if pReact > 0 && rand.Float64() < pReact {
			if err := v.SendReaction(emojis[rand.IntN(len(emojis))]); err == nil {
				r.reactions.Add(1)
			}
		}
	}
}
