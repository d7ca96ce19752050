package loadtest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// launch starts a viewer on its own goroutine, which ends once the viewer
// has media on every track, has failed, or ctx ended. The viewer itself
// stays open until it leaves or the run ends.
func (r *run) launch(ctx context.Context, rv *runViewer) {
	rv.startAt = time.Since(r.begin)
	rv.state.Store(stateStarted)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		pv := rv.plan
		tok, err := r.cfg.token(pv.Identity, pv.Room, false)
		if err != nil {
			rv.fail(fmt.Errorf("token: %w", err))
			return
		}
		vcfg := ViewerConfig{URL: r.cfg.Target.URL, Room: pv.Room, Token: tok, Name: pv.Identity, Region: r.plan.Region, Lean: !r.cfg.PionViewers,
			LinkKbps: r.cfg.ViewerLinkKbps, ICE: r.cfg.ICE, ICETLS: r.cfg.ICETLS}
		if r.cfg.ICE != ICEDirect {
			vcfg.Lean = false // the lean viewer has no TURN client
		}
		if r.cfg.Target.WHEP != "" {
			vcfg.URL, vcfg.WHEPURL = "", RoomURL(r.cfg.Target.WHEP, pv.Room)
			vcfg.NoAudio = r.plan.room(pv.Room).AudioTracks == 0
		}
		if r.cfg.TokenFunc != nil {
			// Minted tokens are minted again when the server asks.
			vcfg.TokenSource = func() (string, error) { return r.cfg.TokenFunc(pv.Identity, pv.Room, false) }
		}
		v := NewViewer(vcfg)
		rv.v.Store(v)
		wctx, cancel := context.WithTimeout(ctx, r.cfg.MediaTimeout)
		defer cancel()
		if err := v.Start(wctx); err != nil {
			rv.fail(err)
			return
		}
		if err := v.WaitTracks(wctx, rv.tracks); err != nil {
			if ctx.Err() == nil && rv.state.Load() == stateStarted { // a timeout, not the end of the run
				rv.fail(fmt.Errorf("%w: %w", errNoMedia, err))
			}
			return
		}
		// Media on every track: the frames sent from now on are this
		// viewer's to receive (the setup before it is not a server's lag).
		sent, got := r.framesSent(pv.Room), v.Latency().Count()
		rv.mu.Lock()
		rv.framesAtJoin, rv.framesGotAtJoin, rv.framesJoinAt = sent, got, time.Now()
		rv.mu.Unlock()
		rv.state.CompareAndSwap(stateStarted, stateConnected)
		if rv.leaveDue.Load() {
			r.leave(rv)
		}
	}()
}

var errNoMedia = errors.New("no media")

// frameMargin is how much of each end of a viewer's window its frames
// received of sent leave out (ReportTotals.FramesSent).
const frameMargin = 250 * time.Millisecond

// leave takes the viewer's stats and closes it (churn).
func (r *run) leave(rv *runViewer) {
	if rv.state.Load() == stateStarted {
		rv.leaveDue.Store(true) // still joining: leaves once connected
	}
	if !rv.state.CompareAndSwap(stateConnected, stateLeft) {
		return // failed, or still joining
	}
	v := rv.v.Load()
	sent := r.framesSent(rv.plan.Room) // before the count: none in flight
	s := v.Stats()
	received := v.Latency().Count()
	rv.mu.Lock()
	rv.final, rv.counted, rv.leftAt = &s, s, time.Since(r.begin)
	rv.framesAtLeave, rv.framesReceived, rv.framesLeaveAt = sent, received, time.Now()
	rv.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		_ = v.Close()
	}()
}

// record is one viewer's ViewerRecord; its latency histogram is added to
// all.
func (r *run) record(rv *runViewer, all *Latency) ViewerRecord {
	pv := rv.plan
	rec := ViewerRecord{
		Identity: pv.Identity, Room: pv.Room,
		PlannedStartMS: msOf(pv.Start), PlannedLeaveMS: msOf(pv.Leave),
		Outcome: OutcomeNotStarted,
	}
	st := rv.state.Load()
	if st == statePending {
		return rec
	}
	rec.StartMS = msOf(rv.startAt)
	rv.mu.Lock()
	err, final, counted, leftAt := rv.err, rv.final, rv.counted, rv.leftAt
	atJoin, atLeave, received, gotAtJoin := rv.framesAtJoin, rv.framesAtLeave, rv.framesReceived, rv.framesGotAtJoin
	joinAt, leaveAt := rv.framesJoinAt, rv.framesLeaveAt
	rv.mu.Unlock()
	v := rv.v.Load()
	switch {
	case st == stateFailed:
		rec.Outcome, rec.ErrorCode, rec.Error = OutcomeFailed, FailureCode(err), err.Error()
	case st == stateStarted:
		// Still joining when the run ended (cut short): not connected.
		rec.Outcome, rec.ErrorCode, rec.Error = OutcomeFailed, "interrupted", "the run ended while it joined"
	default:
		rec.Outcome = OutcomeConnected
	}
	if v == nil {
		return rec
	}
	if final == nil {
		s := v.Stats()
		final = &s
	}
	lat := v.Latency() // after Close: the frames in flight at its leave arrived
	received = max(received, lat.Count())
	if st == stateLeft {
		rec.LeftMS = msOf(leftAt)
	} else if atLeave == 0 {
		atLeave, leaveAt = r.framesSent(pv.Room), time.Now() // measures not frozen (cut short)
	}
	if atLeave > atJoin {
		sent := atLeave - atJoin
		// A frame sent within frameMargin of either end of the window may
		// have been on its way when the count was taken (the server's and
		// the network's normal delay, and the replay a joining viewer
		// gets): it is not required. A starved viewer misses far more.
		if d := leaveAt.Sub(joinAt); d > 0 {
			margin := uint64(float64(sent) * (2 * frameMargin).Seconds() / d.Seconds())
			sent -= min(margin, sent)
		}
		rec.FramesSent = sent
		rec.FramesReceived = min(received-min(gotAtJoin, received), sent)
	}
	if counted.VideoPackets+counted.AudioPackets == 0 {
		counted = *final
	}
	rec.JoinMS = msOf(final.JoinedAfter)
	rec.FirstPacketMS = msOf(final.FirstPacketAfter)
	rec.FirstKeyframeMS = msOf(final.FirstKeyframeFromStart)
	rec.Packets = counted.VideoPackets + counted.AudioPackets
	rec.VideoPackets, rec.AudioPackets = counted.VideoPackets, counted.AudioPackets
	rec.Bytes = counted.Bytes
	rec.Frames, rec.Keyframes = counted.Frames, counted.Keyframes
	rec.LostRaw, rec.Lost = counted.LostRaw, counted.Lost
	rec.LossPercent = lossPercent(rec.Lost, rec.Packets)
	rec.LossRawPercent = lossPercent(rec.LostRaw, rec.Packets+rec.Lost-min(rec.LostRaw, rec.Packets+rec.Lost))
	j := final.JitterVideo
	if counted.VideoPackets == 0 {
		j = final.JitterAudio
	}
	rec.JitterMS = msOf(j)
	rec.LatencyP50MS, rec.LatencyP95MS = msOf(final.LatencyP50), msOf(final.LatencyP95)
	if watched := final.at - final.FirstPacketAfter; watched > 0 {
		rec.BitrateKbps = float64(final.Bytes) * 8 / 1000 / watched.Seconds()
		if counted.VideoPackets > 0 {
			rec.WatchMS = msOf(watched)
		}
	}
	rec.Freezes, rec.FreezeMS = final.Freezes, msOf(final.FreezeTime)
	c := v.ChatStats() // after Close: every echo that arrived while it was open
	rec.ChatsSent, rec.ReactionsSent, rec.ChatsDelivered, rec.ReactionsDelivered = c.ChatsSent, c.ReactionsSent, c.ChatsDelivered, c.ReactionsDelivered
	rec.MessagesRefused, rec.ChatEvents, rec.ReactionEvents = c.Refused, c.ChatEvents, c.ReactionEvents
	all.Add(lat)
	return rec
}
