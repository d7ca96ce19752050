package room

import (
	"context"
	"log/slog"
)

// A WHIP or WHEP session's participant is made for one HTTP request that
// may fail: a WHEP player waiting for a broadcast asks every Retry-After
// (5 s) and is refused 404 each time. Its join is logged at info only once
// its offer is answered (a session exists), and its leave at info only if
// its join was: a waiting player's asks are logged at debug. Other
// participants (WebSocket clients, relays) are logged at info when they
// join and leave.

// quietJoin reports whether spec is a WHIP/WHEP session's participant,
// whose join is logged at info once its offer is answered.
func quietJoin(spec ParticipantSpec) bool { return spec.LeaveOnFailure && !spec.Relay }

// logJoin logs the participant's join: at info, or at debug for a session
// not answered yet (logAnswered logs it at info then).
func (p *Participant) logJoin() {
	if quietJoin(p.spec) {
		p.logJoined(slog.LevelDebug)
		return
	}
	p.joinLogged.Store(true)
	p.logJoined(slog.LevelInfo)
}

// logAnswered logs a WHIP/WHEP session's join at info, once, when its
// offer has been answered.
func (p *Participant) logAnswered() {
	if quietJoin(p.spec) && !p.joinLogged.Swap(true) {
		p.logJoined(slog.LevelInfo)
	}
}

func (p *Participant) logJoined(level slog.Level) {
	p.room.m.log.Log(context.Background(), level, "participant joined", "room", p.room.name, "participant", p.id,
		"role", p.role(), "identity", p.spec.Identity)
}

// logLeft logs the participant's leave, at info when its join was logged
// at info, else at debug (a session never answered).
func (p *Participant) logLeft() {
	level := slog.LevelInfo
	if !p.joinLogged.Load() {
		level = slog.LevelDebug
	}
	p.room.m.log.Log(context.Background(), level, "participant left", "room", p.room.name, "participant", p.id,
		"role", p.role(), "identity", p.spec.Identity)
}
