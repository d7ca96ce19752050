package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// ViewerConfig configures a Viewer.
type ViewerConfig struct {
	URL, Room, Token string
	// Name is the display name sent in join; default "loadtest viewer".
	Name string
	// TokenSource, when set, gives a fresh token whenever the server says
	// the current one is expiring (token_expiring), so a session outlives
	// its first token. Without it the session ends at the token's exp.
	TokenSource func() (string, error)
	// Region, when set, is sent as ?region= on the signalling or WHEP URL:
	// the viewer's region, for a cluster that routes by it.
	Region string
	// WHEPURL, when set, makes the viewer a plain WHEP client (RFC 9725) of
	// that endpoint instead of a WebSocket one: URL and Room are not used,
	// Token is the bearer token. It asks for one video and, unless NoAudio,
	// one audio track.
	WHEPURL string
	NoAudio bool
	// Lean makes the viewer receive without Pion's PeerConnection: its own
	// ICE checks, DTLS and SRTP on one socket read by one goroutine with
	// recvmmsg (see leanPeer). It sends the same feedback (receiver
	// reports, NACKs, transport-cc) for less CPU per packet.
	Lean bool
	// DropEvery, on a lean viewer, drops every n-th RTP packet as it
	// arrives, before decryption: a lossy link, to see NACK repair work
	// against a server. 0: none.
	DropEvery int
	// LinkKbps, on a lean viewer, is the rate of a narrow link in front of
	// it: RTP packets beyond it (50 ms of burst) are dropped as they
	// arrive, retransmissions included: a starved viewer. 0: no limit.
	LinkKbps int
	// FollowRedirects makes a WebSocket viewer follow a draining node's
	// redirect as a real client does: it joins the node the redirect names
	// on a new connection and, once that one is up, leaves the old node
	// (make before break). Counted in ViewerStats.Redirects.
	FollowRedirects bool
	// ICE, when not ICEDirect, makes the viewer a Pion viewer that reaches
	// the server only through its TURN relay over that transport
	// (halo-loadtest --ice); ICETLS checks a turns: server's certificate
	// (nil: the system's roots).
	ICE    ICEMode
	ICETLS *tls.Config
}

// ViewerStats are what a viewer has received since Start.
type ViewerStats struct {
	// Tracks is the number of remote tracks that delivered at least one
	// packet.
	Tracks int
	// VideoPackets and AudioPackets count RTP packets; Bytes counts RTP
	// packet bytes (header and payload) of both.
	VideoPackets, AudioPackets, Bytes uint64
	// Lost is the number of missing sequence numbers (gaps) across tracks,
	// counted per track with 16-bit wrap handling; late reordered arrivals
	// and retransmissions that fill a gap are subtracted: the loss after
	// NACK repair.
	Lost uint64
	// LostRaw counts every gap as it opened, before any repair; Repaired
	// counts the packets that later filled one (LostRaw - Repaired = Lost,
	// unless the window was outrun).
	LostRaw, Repaired uint64
	// JoinedAfter is the time from the viewer's creation to the server's
	// joined reply (WHEP: the 201 answer); FirstPacketAfter to its first RTP
	// packet; FirstKeyframeFromStart to its first keyframe. 0 = not yet.
	JoinedAfter, FirstPacketAfter, FirstKeyframeFromStart time.Duration
	// JitterVideo and JitterAudio are the RFC 3550 interarrival jitter of
	// the first video track and of the audio track.
	JitterVideo, JitterAudio time.Duration
	// Freezes counts gaps over FreezeThreshold between video frames
	// received whole on the first video track, and FreezeTime adds them up; a gap still open
	// when Stats is called counts too.
	Freezes    uint64
	FreezeTime time.Duration

	at time.Duration // since the viewer's epoch, when taken
	// Keyframes counts VP8 keyframes seen (frame starts).
	Keyframes uint64
	// FirstVideoIsKeyframe reports whether the very first VP8 frame start
	// received on the first video track (in OnTrack order) was a keyframe.
	FirstVideoIsKeyframe bool
	// KeyframeFirstTracks is the number of video tracks whose first frame
	// start was a keyframe.
	KeyframeFirstTracks int
	// FirstKeyframeAfter is the time from the subscriber connection's ICE
	// connected state to the first keyframe, or 0 before one arrived.
	FirstKeyframeAfter time.Duration
	// One-way latency from the send time embedded in synthetic video frames
	// to the last packet of each frame received whole (needs one clock for
	// publisher and viewer), of frames sent after the viewer joined: the
	// picture the server replays to a new viewer is as old as the last
	// keyframe, which is not latency.
	LatencyP50, LatencyP95, LatencyP99, LatencyMax time.Duration
	// Frames counts video frames received whole: every packet from the
	// one beginning the frame to its marker packet (frameAssembler); a
	// frame missing a packet for good, or cut short, is not received.
	Frames uint64
	// Recoveries counts new subscriber connections made after the server
	// reported media_failed.
	Recoveries uint64
	// Redirects counts the draining nodes' redirects followed
	// (ViewerConfig.FollowRedirects).
	Redirects uint64
}

// Viewer is a synthetic watcher: it joins a room with auto_subscribe,
// answers every offer of the server on the subscriber connection
// (renegotiation included), trickles candidates both ways, and reads every
// remote track on one goroutine per track, measuring what arrives.
type Viewer struct {
	cfg   ViewerConfig
	epoch time.Time // monotonic base for connectedAt and firstKeyAt

	videoPackets, audioPackets, bytes atomic.Uint64
	lost                              atomic.Int64
	keyframes, frames                 atomic.Uint64
	keyFirstTracks                    atomic.Int64
	firstVideo                        atomic.Int32 // 0 unknown, 1 keyframe, 2 not
	connectedAt                       atomic.Int64 // ns since epoch, 0 = not yet
	firstKeyAt                        atomic.Int64 // ns since epoch, 0 = not yet
	latency                           histogram
	recoveries                        atomic.Uint64 // new connections after media_failed
	redirects                         atomic.Uint64 // redirects followed
	videoSSRC                         atomic.Uint32 // first video track's SSRC, 0 = none yet
	videoSeq                          atomic.Uint32 // its highest sequence number seen
	lostRaw, repaired                 atomic.Uint64
	joinedAt, firstPacketAt           atomic.Int64 // ns since epoch, 0 = not yet
	joinedWall                        atomic.Int64 // Unix ns of joinedAt
	lastFrameAt                       atomic.Int64 // ns since epoch, first video track
	freezes, freezeNS                 atomic.Uint64
	jitterVideo, jitterAudio          atomic.Uint64 // microseconds
	whepResource                      string        // WHEP session URL, for DELETE
	chat                              chatBook      // chat and reactions sent and received

	mu          sync.Mutex
	conn        *Conn
	pc          *webrtc.PeerConnection
	lean        *leanPeer
	closed      bool
	videoOpened int           // video tracks seen by OnTrack, for ordering
	active      int           // tracks that delivered a packet
	activeCh    chan struct{} // closed and replaced when active grows
	signalErr   error         // first error answering an offer

	onLean func(*leanPeer) // test hook: each new lean transport, before use

	signals chan Envelope // offers and trickles, in arrival order
	stop    chan struct{} // closed by Close
	wg      sync.WaitGroup
}

// NewViewer returns a viewer for cfg; Start connects it.
func NewViewer(cfg ViewerConfig) *Viewer {
	if cfg.Name == "" {
		cfg.Name = "loadtest viewer"
	}
	return &Viewer{
		cfg:      cfg,
		epoch:    time.Now(),
		activeCh: make(chan struct{}),
		signals:  make(chan Envelope, 64),
		stop:     make(chan struct{}),
	}
}

// Conn returns the signalling connection, or nil before Start. Every event
// the server sends (offers and trickles included) is also queued for its
// Next, so a test can watch events; nobody has to read them.
func (v *Viewer) Conn() *Conn {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.conn
}

// Start creates the subscriber peer connection, dials and joins with
// auto_subscribe, and returns once joined; answering offers goes on in the
// background until Close. ctx bounds Start only. On error everything started
// is released.
func (v *Viewer) Start(ctx context.Context) error {
	if err := v.start(ctx); err != nil {
		_ = v.Close()
		return err
	}
	return nil
}

func (v *Viewer) start(ctx context.Context) error {
	v.mu.Lock()
	if v.closed || v.pc != nil {
		v.mu.Unlock()
		return errors.New("loadtest: viewer already started or closed")
	}
	v.mu.Unlock()
	if v.cfg.WHEPURL != "" {
		if v.cfg.Lean {
			return v.startLeanWHEP(ctx)
		}
		return v.startWHEP(ctx)
	}

	conn, err := dial(ctx, withQuery(v.cfg.URL, "region", v.cfg.Region), v.router(v.signals))
	if err != nil {
		return err
	}
	if v.cfg.TokenSource != nil {
		conn.SetTokenSource(v.cfg.TokenSource)
	}
	v.mu.Lock()
	v.conn = conn
	v.mu.Unlock()
	if v.cfg.Lean {
		return v.startLeanWS(ctx, conn)
	}
	pc, remote, local, err := v.newPeer(conn)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.pc = pc
	closed := v.closed
	v.mu.Unlock()
	if closed {
		_ = pc.Close()
		return errors.New("loadtest: viewer closed during start")
	}
	if !v.goOwned(func() { v.signalLoop(pc, conn, remote, local, v.signals) }) {
		return errors.New("loadtest: viewer closed during start")
	}
	autoSubscribe := true
	j, err := join(ctx, conn, v.cfg.Token, v.cfg.Room, v.cfg.Name, &autoSubscribe)
	if err != nil {
		return err
	}
	v.chat.joinedAs(j.ParticipantID)
	v.joined()
	return nil
}

// joined records the moment the server accepted the viewer: frames sent
// before it (the server's replay of the picture since the last keyframe)
// are not counted in latency, which is the transport's, not their age.
func (v *Viewer) joined() {
	v.joinedWall.Store(time.Now().UnixNano())
	v.joinedAt.Store(int64(max(time.Since(v.epoch), 1)))
}

// startWHEP watches over plain WHEP: one POST with the complete offer.
func (v *Viewer) startWHEP(ctx context.Context) error {
	pc, err := v.newPeerConn()
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.pc = pc
	closed := v.closed
	v.mu.Unlock()
	if closed {
		return errors.New("loadtest: viewer closed during start")
	}
	recv := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, recv); err != nil {
		return fmt.Errorf("loadtest: whep video transceiver: %w", err)
	}
	if !v.cfg.NoAudio {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, recv); err != nil {
			return fmt.Errorf("loadtest: whep audio transceiver: %w", err)
		}
	}
	resource, err := whipExchange(ctx, pc, withQuery(v.cfg.WHEPURL, "region", v.cfg.Region), v.cfg.Token)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.whepResource = resource
	v.mu.Unlock()
	v.joined()
	return nil
}

// newPeer builds a subscriber peer connection that signals through conn.
func (v *Viewer) newPeer(conn *Conn) (*webrtc.PeerConnection, *remoteCandidates, *localCandidates, error) {
	pc, err := v.newPeerConn()
	if err != nil {
		return nil, nil, nil, err
	}
	remote := &remoteCandidates{pc: pc}
	local := &localCandidates{target: TargetSubscriber, conn: conn}
	pc.OnICECandidate(local.onCandidate)
	return pc, remote, local, nil
}

// newPeerConn builds a receiving peer connection that measures what it
// gets.
func (v *Viewer) newPeerConn() (*webrtc.PeerConnection, error) {
	target := v.cfg.URL
	if v.cfg.WHEPURL != "" {
		target = v.cfg.WHEPURL
	}
	conf := webrtc.Configuration{}
	var api *webrtc.API
	var err error
	if v.cfg.ICE != ICEDirect {
		endpoint := v.cfg.WHEPURL
		if endpoint == "" {
			endpoint = whepOf(v.cfg.URL, v.cfg.Room)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		servers, serr := RelayICEServers(ctx, endpoint, v.cfg.Token, v.cfg.ICE)
		cancel()
		if serr != nil {
			return nil, serr
		}
		conf = RelayConfiguration(servers)
		api, err = newViewerAPI(false, func(se *webrtc.SettingEngine) { ApplyICEMode(se, v.cfg.ICE, v.cfg.ICETLS) })
	} else {
		api, err = viewerAPI(loopbackTarget(target))
	}
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		return nil, fmt.Errorf("loadtest: new peer connection: %w", err)
	}
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateConnected {
			v.connectedAt.CompareAndSwap(0, int64(max(time.Since(v.epoch), 1)))
		}
	})
	pc.OnTrack(v.onTrack)
	return pc, nil
}

// mediaFailed reports whether env tells that the server released our
// subscriber connection.
func mediaFailed(env Envelope) bool {
	if env.Type != TypeError {
		return false
	}
	var e struct{ Code, Target string }
	return env.Decode(&e) == nil && e.Code == "media_failed" && e.Target == TargetSubscriber
}

// router returns what runs on a Conn's read goroutine: it hands offers,
// trickles and media failures, in order, to the signal loop reading
// signals, and follows a draining node's redirect.
func (v *Viewer) router(signals chan Envelope) func(Envelope) {
	return func(env Envelope) {
		if v.chat.onChatEvent(env) {
			return
		}
		if env.Type == TypeRedirect && v.cfg.FollowRedirects {
			var r struct{ URL, Reason string }
			if env.Decode(&r) == nil && r.Reason == "draining" && r.URL != "" {
				v.goOwned(func() { v.follow(r.URL) })
			}
			return
		}
		if env.Type != TypeOffer && env.Type != TypeTrickle && !mediaFailed(env) {
			return
		}
		select {
		case signals <- env:
		case <-v.stop:
		}
	}
}

// followTimeout bounds a redirect's new connection, from dial to media.
const followTimeout = 10 * time.Second

// follow joins the node at url on a new signalling and media connection
// and, once its media connection is up, leaves the old node: the viewer
// keeps receiving throughout (make before break). On failure the viewer
// stays where it was, which ends the session when that node is gone.
func (v *Viewer) follow(url string) {
	ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
	defer cancel()
	signals := make(chan Envelope, 64)
	conn, err := dial(ctx, url, v.router(signals))
	if err != nil {
		v.followFailed(err)
		return
	}
	if v.cfg.TokenSource != nil {
		conn.SetTokenSource(v.cfg.TokenSource)
	}
	pc, remote, local, err := v.newPeer(conn)
	if err != nil {
		_ = conn.Close()
		v.followFailed(err)
		return
	}
	up := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(up) })
		}
	})
	if !v.goOwned(func() { v.signalLoop(pc, conn, remote, local, signals) }) {
		_ = pc.Close()
		_ = conn.Close()
		return
	}
	autoSubscribe := true
	j, err := join(ctx, conn, v.cfg.Token, v.cfg.Room, v.cfg.Name, &autoSubscribe)
	if err != nil {
		_ = pc.Close()
		_ = conn.Close()
		v.followFailed(err)
		return
	}
	v.chat.joinedAs(j.ParticipantID)
	select {
	case <-up:
	case <-ctx.Done():
		_ = pc.Close()
		_ = conn.Close()
		v.followFailed(ctx.Err())
		return
	case <-v.stop:
		_ = pc.Close()
		_ = conn.Close()
		return
	}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		_ = pc.Close()
		_ = conn.Close()
		return
	}
	oldConn, oldPC := v.conn, v.pc
	v.conn, v.pc = conn, pc
	v.mu.Unlock()
	v.redirects.Add(1)
	if oldConn != nil {
		_, _ = oldConn.Send(TypeLeave, struct{}{})
		_ = oldConn.Close()
	}
	if oldPC != nil {
		_ = oldPC.Close()
	}
}

// followFailed records a redirect that could not be followed.
func (v *Viewer) followFailed(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.signalErr == nil {
		v.signalErr = fmt.Errorf("loadtest: follow redirect: %w", err)
	}
}

// signalLoop applies the server's offers and candidates from signals in
// arrival order.
func (v *Viewer) signalLoop(pc *webrtc.PeerConnection, conn *Conn, remote *remoteCandidates, local *localCandidates, signals chan Envelope) {
	for {
		var env Envelope
		select {
		case env = <-signals:
		case <-v.stop:
			return
		}
		var err error
		switch env.Type {
		case TypeError: // media_failed: a new connection, and subscribe again
			v.recoveries.Add(1)
			_ = pc.Close()
			var next *webrtc.PeerConnection
			if next, remote, local, err = v.newPeer(conn); err == nil {
				v.mu.Lock()
				pc, v.pc = next, next
				closed := v.closed
				v.mu.Unlock()
				if closed {
					_ = next.Close()
					return
				}
				_, err = conn.Send(TypeSubscribe, TrackIDs{})
			}
		case TypeOffer:
			err = v.answer(pc, conn, env, remote, local)
		case TypeTrickle:
			var t Trickle
			if err = env.Decode(&t); err == nil && t.Target == TargetSubscriber {
				err = remote.add(t.Candidate)
			}
		}
		if err != nil {
			v.mu.Lock()
			if v.signalErr == nil {
				v.signalErr = err
			}
			v.mu.Unlock()
		}
	}
}

// answer applies one server offer and sends our answer.
func (v *Viewer) answer(pc *webrtc.PeerConnection, conn *Conn, env Envelope, remote *remoteCandidates, local *localCandidates) error {
	var offer SDPMessage
	if err := env.Decode(&offer); err != nil {
		return err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}); err != nil {
		return fmt.Errorf("loadtest: viewer set remote offer: %w", err)
	}
	if err := remote.flush(); err != nil {
		return err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("loadtest: viewer create answer: %w", err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("loadtest: viewer set local answer: %w", err)
	}
	if _, err := conn.Send(TypeAnswer, SDPMessage{SDP: answer.SDP}); err != nil {
		return err
	}
	local.release()
	return nil
}

// SignalError returns the first error met while answering the server's
// offers or adding its candidates, or nil.
func (v *Viewer) SignalError() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.signalErr
}

// WaitTracks waits until n remote tracks have each delivered at least one
// packet, ctx ends, or the viewer is closed.
func (v *Viewer) WaitTracks(ctx context.Context, n int) error {
	for {
		v.mu.Lock()
		active, ch := v.active, v.activeCh
		v.mu.Unlock()
		if active >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("loadtest: %d of %d tracks delivered media: %w", active, n, ctx.Err())
		case <-v.stop:
			return errors.New("loadtest: viewer closed")
		}
	}
}

// Stats returns what the viewer has received so far.
func (v *Viewer) Stats() ViewerStats {
	v.mu.Lock()
	tracks := v.active
	v.mu.Unlock()
	s := ViewerStats{
		Tracks:               tracks,
		VideoPackets:         v.videoPackets.Load(),
		AudioPackets:         v.audioPackets.Load(),
		Bytes:                v.bytes.Load(),
		Lost:                 uint64(max(v.lost.Load(), 0)),
		Keyframes:            v.keyframes.Load(),
		Frames:               v.frames.Load(),
		Recoveries:           v.recoveries.Load(),
		Redirects:            v.redirects.Load(),
		FirstVideoIsKeyframe: v.firstVideo.Load() == 1,
		KeyframeFirstTracks:  int(v.keyFirstTracks.Load()),
		LatencyP50:           v.latency.quantile(0.50),
		LatencyP95:           v.latency.quantile(0.95),
		LatencyP99:           v.latency.quantile(0.99),
		LatencyMax:           v.latency.maxDuration(),
	}
	s.FirstKeyframeAfter = v.firstKeyframeAfter()
	s.at = time.Since(v.epoch)
	s.LostRaw, s.Repaired = v.lostRaw.Load(), v.repaired.Load()
	s.JoinedAfter = time.Duration(v.joinedAt.Load())
	s.FirstPacketAfter = time.Duration(v.firstPacketAt.Load())
	s.FirstKeyframeFromStart = time.Duration(v.firstKeyAt.Load())
	s.JitterVideo = time.Duration(v.jitterVideo.Load()) * time.Microsecond
	s.JitterAudio = time.Duration(v.jitterAudio.Load()) * time.Microsecond
	s.Freezes, s.FreezeTime = v.freezes.Load(), time.Duration(v.freezeNS.Load())
	if last := v.lastFrameAt.Load(); last != 0 {
		if open := time.Since(v.epoch) - time.Duration(last); open > FreezeThreshold {
			s.Freezes++
			s.FreezeTime += open
		}
	}
	return s
}

// counters returns the packet counters only (cheap: for every progress
// tick).
func (v *Viewer) counters() ViewerStats {
	return ViewerStats{
		VideoPackets: v.videoPackets.Load(),
		AudioPackets: v.audioPackets.Load(),
		Bytes:        v.bytes.Load(),
		Lost:         uint64(max(v.lost.Load(), 0)),
		LostRaw:      v.lostRaw.Load(),
		Repaired:     v.repaired.Load(),
		Frames:       v.frames.Load(),
		Keyframes:    v.keyframes.Load(),
	}
}

func (v *Viewer) firstKeyframeAfter() time.Duration {
	key := v.firstKeyAt.Load()
	if key == 0 {
		return 0
	}
	// ICE may report connected after the first packet was read (callbacks
	// are asynchronous): that counts as zero.
	conn := v.connectedAt.Load()
	if conn == 0 || key < conn {
		return 0
	}
	return time.Duration(key - conn)
}

// goOwned runs f on a goroutine that Close waits for, unless Close has
// begun; it reports whether f was started.
func (v *Viewer) goOwned(f func()) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return false
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		f()
	}()
	return true
}

// Close sends leave, closes the peer connection and the socket, and waits
// for every goroutine of the viewer. Safe to call more than once.
func (v *Viewer) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		v.wg.Wait()
		return nil
	}
	v.closed = true
	conn, pc, resource := v.conn, v.pc, v.whepResource
	close(v.stop)
	v.mu.Unlock()
	v.chat.closed()

	whipDelete(resource, v.cfg.Token)
	var err error
	if conn != nil {
		_, _ = conn.Send(TypeLeave, struct{}{})
	}
	if lp := v.leanPeerNow(); lp != nil {
		_ = lp.Close()
	}
	if pc != nil {
		if cerr := pc.Close(); cerr != nil {
			err = fmt.Errorf("loadtest: close viewer pc: %w", cerr)
		}
	}
	if conn != nil {
		_ = conn.Close()
	}
	v.wg.Wait()
	return err
}

// DropConnection closes the viewer's media connection without a word to the
// server, as a network loss or a crashed app would (for failure tests). The
// server notices, reports media_failed, and the viewer subscribes again on a
// new connection (counted in ViewerStats.Recoveries).
func (v *Viewer) DropConnection() {
	v.mu.Lock()
	pc, lp := v.pc, v.lean
	v.mu.Unlock()
	if pc != nil {
		_ = pc.Close()
	}
	if lp != nil {
		_ = lp.Close()
	}
}

// whepOf is the WHEP endpoint of room on the node of the WebSocket URL ws.
func whepOf(ws, room string) string {
	u, err := url.Parse(ws)
	if err != nil {
		return ""
	}
	if u.Scheme == "wss" {
		u.Scheme = "https"
	} else {
		u.Scheme = "http"
	}
	u.Path, u.RawQuery = "/whep/"+url.PathEscape(room), ""
	return u.String()
}
