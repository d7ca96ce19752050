package signaling

import (
	"context"
	"errors"

	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/halobuzz/live/room"
	"golang.org/x/time/rate"
)

// maxChatRunes is the longest chat message accepted.
const maxChatRunes = 1000

// maxEmojiBytes bounds a reaction: one emoji, which may be a sequence of
// several code points (a flag, a family, a skin tone).
const maxEmojiBytes = 32

// wsClient is one WebSocket connection. One goroutine reads and handles
// messages in order; one writes from a bounded queue, so a slow client never
// blocks the room: when its queue is full it is disconnected.
type wsClient struct {
	s    *Server
	conn *websocket.Conn
	ip   string
	host string // the Host the client connected to: TURN URLs name it (iceservers.go)
	log  *slog.Logger

	queue     chan []byte
	done      chan struct{}
	closeOnce sync.Once
	closeCode int
	closeText string
	closeMu   sync.Mutex

	p        *room.Participant // set by join; used by the reader only
	joined   atomic.Bool
	unjoined func() // gives back this socket's place among the address's unjoined sockets
	limiter  *rate.Limiter
	token    tokenClock // expiry of the token the session runs on
	pend     wsPending  // the subscriber connection among the pending sessions (pending_ws.go)

	// Events before the joined reply is queued wait in held.
	holdMu   sync.Mutex
	held     []room.Event
	released atomic.Bool
}

func (s *Server) serveWS(conn *websocket.Conn, ip, host string, unjoined func()) {
	c := &wsClient{
		s: s, conn: conn, ip: ip, host: host, log: s.log.With("remote", ip),
		queue:    make(chan []byte, s.cfg.Signaling.SendQueue),
		done:     make(chan struct{}),
		unjoined: unjoined,
		limiter:  newMessageLimiter(s.cfg.Limits.MessagesPerSecond),
	}
	defer unjoined()
	s.metrics.connections.Inc()
	defer s.metrics.connections.Dec()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	// A socket that does not join soon is dropped: open sockets cost memory,
	// and only a joined participant has a reason to hold one.
	joinTimeout := s.cfg.Signaling.JoinTimeout
	joinTimer := time.AfterFunc(joinTimeout, func() {
		if !c.joined.Load() {
			c.sendError(0, &Error{Code: CodeNotJoined, Message: fmt.Sprintf("no join within %s", joinTimeout), Fatal: true})
			_ = c.conn.NetConn().SetReadDeadline(time.Now())
		}
	})
	c.readLoop()
	joinTimer.Stop()
	c.token.stop()
	if c.p != nil {
		c.p.Leave()
	}
	c.endPending()
	c.shutdown(websocket.CloseNormalClosure, "")
	wg.Wait()
	_ = conn.Close()
}

// Event implements room.EventSink. Events that arrive between the join and
// the joined reply are held, so the client never gets a change before the
// state it changes.
func (c *wsClient) Event(ev room.Event) {
	c.pendingEvent(ev)
	if !c.released.Load() {
		c.holdMu.Lock()
		if !c.released.Load() {
			c.held = append(c.held, ev)
			c.holdMu.Unlock()
			return
		}
		c.holdMu.Unlock()
	}
	c.event(ev)
}

// releaseEvents queues joined, then the events held since the join, then
// lets events through.
func (c *wsClient) releaseEvents(joined []byte) {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	c.enqueue(joined)
	for _, ev := range c.held {
		c.event(ev)
	}
	c.held = nil
	c.released.Store(true)
}

func (c *wsClient) event(ev room.Event) {
	if cl, ok := ev.(room.Closed); ok {
		if frame := removedFrame(cl.Reason); frame != nil {
			// A moderator removed the participant: removed says why, then
			// the socket closes (moderation_wire.go).
			c.enqueue(frame)
			c.shutdown(websocket.ClosePolicyViolation, "removed")
			return
		}
		w := toWire(cl.Reason)
		logWire(c.log, "session closed by the room", cl.Reason, w)
		c.fail(w) // fatal codes end the session
		return
	}
	if typ, data := eventMessage(ev); typ != "" {
		c.enqueue(encode(typ, 0, data))
	}
}

func (c *wsClient) enqueue(frame []byte) {
	select {
	case <-c.done:
		return
	default:
	}
	select {
	case c.queue <- frame:
	default:
		c.s.metrics.slowClients.Inc()
		c.log.Warn("client too slow, disconnecting", "queue", cap(c.queue))
		c.shutdown(websocket.CloseAbnormalClosure, "send queue full")
		// The writer is stuck on the full socket: cut it now rather than at
		// the write deadline, so the participant leaves at once.
		_ = c.conn.NetConn().Close()
	}
}

func (c *wsClient) reply(id int64, typ string, data any) { c.enqueue(encode(typ, id, data)) }

// sendError answers a request with an error, and ends the session after a
// fatal one.
func (c *wsClient) sendError(id int64, e *Error) {
	c.s.metrics.errors.WithLabelValues(e.Code).Inc()
	c.enqueue(encode("error", id, errorData{Code: e.Code, Message: e.Message}))
	if e.Fatal {
		code := websocket.ClosePolicyViolation
		if e.Code == CodeMessageTooLarge {
			code = websocket.CloseMessageTooBig
		} else if e.Code == CodeShuttingDown {
			code = websocket.CloseGoingAway
		}
		c.shutdown(code, e.Code)
	}
}

func (c *wsClient) fail(e *Error) { c.sendError(0, e) }

// shutdown makes the writer flush what is queued, send a close frame and stop.
func (c *wsClient) shutdown(code int, text string) {
	c.closeOnce.Do(func() {
		c.closeMu.Lock()
		c.closeCode, c.closeText = code, text
		c.closeMu.Unlock()
		close(c.done)
	})
}

func (c *wsClient) writeLoop() {
	cfg := c.s.cfg.Signaling
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	write := func(typ int, b []byte) error {
		_ = c.conn.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		return c.conn.WriteMessage(typ, b)
	}
	for {
		select {
		case b := <-c.queue:
			if err := write(websocket.TextMessage, b); err != nil {
				c.shutdown(websocket.CloseAbnormalClosure, "")
				_ = c.conn.Close() // unblock the reader
				return
			}
		case <-ping.C:
			if err := write(websocket.PingMessage, nil); err != nil {
				c.shutdown(websocket.CloseAbnormalClosure, "")
				_ = c.conn.Close()
				return
			}
		case <-c.done:
			// Flush what is already queued (the error that ended the session).
			for {
				select {
				case b := <-c.queue:
					if write(websocket.TextMessage, b) != nil {
						_ = c.conn.Close()
						return
					}
					continue
				default:
				}
				break
			}
			c.closeMu.Lock()
			code, text := c.closeCode, c.closeText
			c.closeMu.Unlock()
			if code != websocket.CloseAbnormalClosure {
				_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
			}
			// Give the peer a moment to close, then make sure the reader ends.
			time.AfterFunc(time.Second, func() { _ = c.conn.Close() })
			return
		}
	}
}

func (c *wsClient) readLoop() {
	cfg := c.s.cfg
	max := int64(cfg.Limits.MaxMessageBytes)
	_ = c.conn.SetReadDeadline(time.Now().Add(cfg.Signaling.ReadTimeout))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(cfg.Signaling.ReadTimeout))
	})
	for {
		select {
		case <-c.done:
			return
		default:
		}
		typ, r, err := c.conn.NextReader()
		if err != nil {
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(cfg.Signaling.ReadTimeout))
		frame, err := io.ReadAll(io.LimitReader(r, max+1))
		if err != nil {
			return
		}
		if int64(len(frame)) > max {
			c.fail(newError(CodeMessageTooLarge, fmt.Sprintf("message is over %d bytes", max)))
			return
		}
		// Every frame counts against the rate, whatever its type: a
		// refused frame costs the server an answer too.
		if !c.limiter.Allow() {
			c.fail(newError(CodeRateLimited, "too many messages per second"))
			return
		}
		if typ != websocket.TextMessage {
			c.fail(newError(CodeBadJSON, "binary frames are not accepted: send JSON in text frames"))
			continue
		}
		env, werr := decodeEnvelope(frame)
		if werr != nil {
			c.sendError(env.ID, werr)
			continue
		}
		if leave := c.handle(env); leave {
			return
		}
	}
}

// handle runs one client message; it reports whether the session is over.
func (c *wsClient) handle(env envelope) bool {
	if env.Type != "join" && c.p == nil {
		if _, known := clientTypes[env.Type]; known {
			c.sendError(env.ID, newError(CodeNotJoined, "send join first"))
			return false
		}
	}
	var err error
	switch env.Type {
	case "join":
		err = c.join(env)
	case "publish":
		err = c.publish(env)
	case "subscribe", "unsubscribe":
		err = c.subscribe(env)
	case "answer":
		var d sdpData
		if e := decodeData(env, &d); e != nil {
			err = e
		} else if d.SDP == "" {
			err = newError(CodeBadRequest, "sdp is missing")
		} else {
			err = c.p.Answer(d.SDP)
		}
	case "trickle":
		err = c.trickle(env)
	case "chat":
		var d chatData
		if e := decodeData(env, &d); e != nil {
			err = e
		} else if t := strings.TrimSpace(d.Text); t == "" || utf8.RuneCountInString(t) > maxChatRunes {
			err = newError(CodeBadRequest, fmt.Sprintf("text must be 1..%d characters", maxChatRunes))
		} else {
			err = c.p.Chat(t)
		}
	case "reaction":
		var d reactionData
		if e := decodeData(env, &d); e != nil {
			err = e
		} else if !validEmoji(d.Emoji) {
			err = newError(CodeBadRequest, fmt.Sprintf("emoji must be 1..%d bytes of printable text without spaces", maxEmojiBytes))
		} else {
			err = c.p.React(d.Emoji)
		}
	case "set_layer":
		err = c.setLayer(env)
	case "stats":
		st := c.p.ViewerStats()
		c.reply(env.ID, "stats", statsData{BandwidthEstimate: st.BandwidthEstimate, Layers: st.Layers})
	case "refresh":
		err = c.refresh(env)
	case "leave":
		c.p.Goodbye()
		c.shutdown(websocket.CloseNormalClosure, "bye")
		return true
	default:
		err = newError(CodeUnknownType, fmt.Sprintf("unknown message type %q", env.Type))
	}
	if err != nil {
		w := toWire(err)
		logWire(c.log, "request failed", err, w, "type", env.Type)
		c.sendError(env.ID, w)
		return w.Fatal
	}
	return false
}

var clientTypes = map[string]struct{}{
	"join": {}, "publish": {}, "subscribe": {}, "unsubscribe": {}, "answer": {}, "trickle": {}, "chat": {}, "reaction": {}, "refresh": {}, "leave": {}, "set_layer": {}, "stats": {},
}

func (c *wsClient) join(env envelope) error {
	start := time.Now()
	if c.p != nil {
		return newError(CodeAlreadyJoined, "this connection has joined already")
	}
	var d joinData
	if e := decodeData(env, &d); e != nil {
		return e
	}
	if !c.s.joinAllowed(c.ip, start) {
		return newError(CodeRateLimited, "too many joins from this address; retry in a minute")
	}
	spec, roomName, exp, err := c.s.authorize(d.Token, d.Room, start)
	if err != nil {
		return err
	}
	if len(d.Name) > 128 {
		return newError(CodeBadRequest, "name is over 128 bytes")
	}
	// A token's name claim is who the participant is to others: the join's
	// name cannot replace it (it is ignored; joined says which name is
	// used). A token without one lets the client choose, else the identity.
	if spec.Name == "" {
		spec.Name = strings.TrimSpace(d.Name)
	}
	if spec.Name == "" {
		spec.Name = spec.Identity
	}
	if d.Hidden {
		// A hidden participant only listens to room events: it may not publish.
		spec.Hidden, spec.Publish = true, false
	}
	p, err := c.s.rooms.Join(roomName, spec, c)
	if errors.Is(err, room.ErrNodeFull) {
		return c.refuseFull(env) // admission.go
	}
	if err != nil {
		return err
	}
	c.p = p
	c.joined.Store(true)
	c.unjoined()
	c.token.identity, c.token.room = spec.Identity, roomName
	c.token.arm(c, exp)
	c.log = c.log.With("room", roomName, "participant", p.ID())
	st := p.JoinedState()
	out := joinedData{
		ParticipantID: p.ID(), Room: roomName, Identity: spec.Identity, Name: spec.Name,
		Grants:       grantsJSON{Publish: spec.Publish, Subscribe: spec.Subscribe},
		Participants: []participantJSON{}, Tracks: []trackJSON{},
		ViewerCount: st.Viewers,
		ICEServers:  append([]string{}, c.s.cfg.ICEServers...),
		TURNServers: c.s.turnServersAt(spec.Identity, c.host, start),
	}
	for _, x := range st.Participants {
		if x.ID != p.ID() {
			out.Participants = append(out.Participants, toParticipantJSON(x))
		}
	}
	for _, t := range st.Tracks {
		out.Tracks = append(out.Tracks, toTrackJSON(t))
	}
	// joined describes the room at the moment of the join; the events held
	// since are the changes after it, and follow it in order.
	c.releaseEvents(encode("joined", env.ID, out))
	c.s.metrics.joinLatency.Observe(time.Since(start).Seconds())
	c.log.Debug("joined", "identity", spec.Identity, "publish", spec.Publish, "subscribe", spec.Subscribe)
	if spec.Subscribe && (d.AutoSubscribe == nil || *d.AutoSubscribe) {
		return c.admitSubscribe(func() error { return p.Subscribe(nil) })
	}
	return nil
}

// validEmoji reports whether s can be a reaction: short, no spaces or
// control characters, and something visible (not only joiners, variation
// selectors or other invisible marks).
func validEmoji(s string) bool {
	if s == "" || len(s) > maxEmojiBytes {
		return false
	}
	visible := false
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
		if unicode.IsGraphic(r) && !unicode.In(r, unicode.Cf, unicode.Mn, unicode.Me, unicode.Variation_Selector) {
			visible = true
		}
	}
	return visible
}

func (c *wsClient) publish(env envelope) error {
	var d publishData
	if e := decodeData(env, &d); e != nil {
		return e
	}
	if d.SDP == "" {
		return newError(CodeBadRequest, "sdp is missing")
	}
	meta := make(map[string]room.TrackMeta, len(d.Tracks))
	for _, t := range d.Tracks {
		switch t.Source {
		case "", "camera", "screen", "microphone":
		default:
			return newError(CodeBadRequest, fmt.Sprintf("source %q must be camera, screen or microphone", t.Source))
		}
		if t.TrackID == "" || len(t.TrackID) > 256 || len(t.Name) > 128 {
			return newError(CodeBadRequest, "track_id must be 1..256 bytes and name at most 128")
		}
		meta[t.TrackID] = room.TrackMeta{Source: t.Source, Name: t.Name}
	}
	if len(d.Tracks) > c.s.cfg.Limits.TracksPerParticipant {
		return newError(CodeTooManyTracks, "more track metadata than tracks allowed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := c.p.Publish(ctx, d.SDP, meta, false)
	if err != nil {
		return err
	}
	c.reply(env.ID, "answer", sdpData{SDP: answer})
	return nil
}

func (c *wsClient) subscribe(env envelope) error {
	var d trackIDsData
	if e := decodeData(env, &d); e != nil {
		return e
	}
	if len(d.TrackIDs) > 256 {
		return newError(CodeBadRequest, "at most 256 track ids")
	}
	var err error
	if env.Type == "subscribe" {
		err = c.admitSubscribe(func() error { return c.p.Subscribe(d.TrackIDs) })
	} else {
		err = c.p.Unsubscribe(d.TrackIDs)
	}
	if err != nil {
		return err
	}
	ids := d.TrackIDs
	if ids == nil {
		ids = []string{}
	}
	c.reply(env.ID, env.Type+"d", trackIDsData{TrackIDs: ids})
	return nil
}

func (c *wsClient) setLayer(env envelope) error {
	var d setLayerData
	if e := decodeData(env, &d); e != nil {
		return e
	}
	cap, ok := room.ParseLayer(d.Max)
	if !ok || d.TrackID == "" {
		return newError(CodeBadRequest, `set_layer needs track_id and max: "low", "medium" or "high"`)
	}
	simulcast, err := c.p.SetLayer(d.TrackID, cap)
	if err != nil {
		return err
	}
	c.reply(env.ID, "layer_set", layerSetData{TrackID: d.TrackID, Max: strings.ToLower(strings.TrimSpace(d.Max)), Simulcast: simulcast})
	return nil
}

func (c *wsClient) trickle(env envelope) error {
	var d trickleData
	if e := decodeData(env, &d); e != nil {
		return e
	}
	if d.Target != "publisher" && d.Target != "subscriber" {
		return newError(CodeBadRequest, "target must be publisher or subscriber")
	}
	if d.Candidate == nil {
		return nil // end of candidates
	}
	if len(d.Candidate.Candidate) > 1024 {
		return newError(CodeBadRequest, "candidate is too long")
	}
	if m, u := d.Candidate.SDPMid, d.Candidate.UsernameFragment; (m != nil && len(*m) > 32) || (u != nil && len(*u) > 256) {
		return newError(CodeBadRequest, "sdpMid is over 32 or usernameFragment over 256 bytes")
	}
	return c.p.AddCandidate(d.Target, *d.Candidate)
}

// CanRedirect implements room.Redirector: a WebSocket client can be sent to
// another node when this one drains.
func (c *wsClient) CanRedirect() bool { return true }

// CanPauseLayers implements room.LayerSink: a WebSocket publisher is told
// which simulcast layers its viewers want (a "layers" message).
func (c *wsClient) CanPauseLayers() bool { return true }
