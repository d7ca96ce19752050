package loadtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// PublisherConfig configures a Publisher. Zero values take the defaults
// given per field.
type PublisherConfig struct {
	URL, Room, Token string
	// Name is the display name sent in join; default "loadtest publisher".
	Name string
	// VideoTracks is the number of VP8 tracks (multi-camera); default 1,
	// and 0 when NoVideo.
	VideoTracks      int
	NoVideo, NoAudio bool
	// VideoBitrate is bits per second per video track; default 2_500_000.
	VideoBitrate int
	// FPS is video frames per second; default 30.
	FPS int
	// KeyframeInterval is the time between natural keyframes; default 2s.
	// An RTCP PLI or FIR also makes the next frame a keyframe.
	KeyframeInterval time.Duration
	// Sources is the source metadata per video track ("camera", "screen");
	// missing entries are "camera".
	Sources []string
	// TokenSource, when set, gives a fresh token whenever the server says
	// the current one is expiring (token_expiring), so a session outlives
	// its first token. Without it the session ends at the token's exp.
	TokenSource func() (string, error)
	// AudioDTX makes the audio talk and pause, as Opus with DTX does (see
	// opusSource): fewer, smaller packets in silences. Off, audio is a
	// steady 50 packets a second.
	AudioDTX bool
	// WHIPURL, when set, makes the publisher a plain WHIP client (RFC 9725)
	// of that endpoint instead of a WebSocket one: URL and Room are not
	// used, Token is the bearer token, and Sources are not sent (WHIP has
	// no track metadata).
	WHIPURL string
	// Simulcast is the number of layers each video track is sent in (2 or
	// 3; 0 or 1: no simulcast), as a browser's simulcast encodings: RIDs
	// q, h, f (q and f for two), MID and RID header extensions on every
	// packet, the top layer at VideoBitrate and each one below at a
	// quarter of the one above. Over the WebSocket the publisher pauses
	// the layers the server's layers message leaves out.
	Simulcast int
	// Codec is the video codec: CodecVP8 (default) or CodecH264 (see
	// h264Source), for servers that take no VP8.
	Codec string
}

// Video codecs a publisher sends.
const (
	CodecVP8  = "vp8"
	CodecH264 = "h264"
)

// maxSimulcastLayers is what the server takes per track.
const maxSimulcastLayers = 3

// simulcastRIDs are the RIDs of n layers, lowest first.
func simulcastRIDs(n int) []string {
	switch {
	case n >= 3:
		return []string{"q", "h", "f"}
	case n == 2:
		return []string{"q", "f"}
	}
	return nil
}

func (c PublisherConfig) withDefaults() PublisherConfig {
	if c.NoVideo {
		c.VideoTracks = 0
	} else if c.VideoTracks <= 0 {
		c.VideoTracks = 1
	}
	if c.VideoBitrate <= 0 {
		c.VideoBitrate = 2_500_000
	}
	if c.FPS <= 0 {
		c.FPS = 30
	}
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = 2 * time.Second
	}
	if c.Name == "" {
		c.Name = "loadtest publisher"
	}
	if c.Codec == "" {
		c.Codec = CodecVP8
	}
	return c
}

// PublisherStats are a publisher's counters since Start.
type PublisherStats struct {
	VideoPackets, AudioPackets uint64
	VideoFrames, Keyframes     uint64
	// PLIs counts keyframe requests received (RTCP PLI and FIR).
	PLIs uint64
}

// Publisher is a synthetic broadcaster: it joins a room over the signalling
// protocol and publishes VP8 video tracks and an Opus track. One goroutine
// paces all its tracks; one goroutine per RTP sender reads RTCP.
type Publisher struct {
	cfg PublisherConfig

	videoPackets, audioPackets atomic.Uint64
	videoFrames, keyframes     atomic.Uint64
	plis                       atomic.Uint64
	// frameTicks counts frame times: one per frame of each video track,
	// whatever its simulcast layers (what one viewer of the track gets).
	frameTicks atomic.Uint64

	mu            sync.Mutex
	participantID string
	conn          *Conn
	pc            *webrtc.PeerConnection
	cancel        context.CancelFunc // stops the pacing goroutine
	paceDone      chan struct{}      // closed when the pacing goroutine has returned
	closed        bool
	whipResource  string // WHIP session URL, for DELETE

	video    []*videoTrack
	audio    *webrtc.TrackLocalStaticRTP
	audioSrc *opusSource

	wg sync.WaitGroup
}

// videoTrack is one published VP8 track, or one simulcast layer of one,
// and its keyframe state.
type videoTrack struct {
	track    *webrtc.TrackLocalStaticRTP
	src      frameSource
	forceKey atomic.Bool // set by RTCP PLI/FIR, consumed by the next frame
	lastKey  time.Time

	// A simulcast layer: its RID, its transceiver (for the MID), the
	// track id it belongs to, whether the server paused it, and the
	// writer that stamps MID and RID (set once negotiated).
	rid      string
	trackID  string
	tc       *webrtc.RTPTransceiver
	paused   atomic.Bool
	stamping rtpWriter
}

// frameSource makes a video track's frames: vp8Source or h264Source.
type frameSource interface {
	writeFrame(w rtpWriter, key bool, sentAt int64) (int, error)
}

// newVideoSource returns the frame source of the publisher's codec.
func (c PublisherConfig) newVideoSource(bitrate int) frameSource {
	if c.Codec == CodecH264 {
		return newH264Source(bitrate, c.FPS, c.KeyframeInterval)
	}
	return newRealisticVP8Source(bitrate, c.FPS, c.KeyframeInterval)
}

// videoCodec is the track codec of the publisher's codec.
func (c PublisherConfig) videoCodec() webrtc.RTPCodecCapability {
	if c.Codec == CodecH264 {
		return h264Codec
	}
	return vp8Codec
}

// stampWriter writes through track with the MID and RID header extensions
// a browser's simulcast sender puts on every packet (Pion's does not).
type stampWriter struct {
	track        *webrtc.TrackLocalStaticRTP
	midID, ridID uint8
	mid, rid     []byte
}

func (w *stampWriter) WriteRTP(p *rtp.Packet) error {
	if err := p.Header.SetExtension(w.midID, w.mid); err != nil {
		return err
	}
	if err := p.Header.SetExtension(w.ridID, w.rid); err != nil {
		return err
	}
	return w.track.WriteRTP(p)
}

// writer is where the pacing goroutine writes this track's frames.
func (vt *videoTrack) writer() rtpWriter {
	if vt.stamping != nil {
		return vt.stamping
	}
	return vt.track
}

// stamp sets up the MID/RID stamping of a simulcast layer once its
// transceiver is negotiated.
func (vt *videoTrack) stamp() error {
	if vt.rid == "" {
		return nil
	}
	w := &stampWriter{track: vt.track, mid: []byte(vt.tc.Mid()), rid: []byte(vt.rid)}
	for _, e := range vt.tc.Sender().GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			w.midID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			w.ridID = uint8(e.ID)
		}
	}
	if w.midID == 0 || w.ridID == 0 || len(w.mid) == 0 {
		return errors.New("loadtest: simulcast: the server's answer negotiates no MID and RID header extensions")
	}
	vt.stamping = w
	return nil
}

// NewPublisher returns a publisher for cfg; Start connects it.
func NewPublisher(cfg PublisherConfig) *Publisher {
	return &Publisher{cfg: cfg.withDefaults()}
}

// ParticipantID returns the id the server gave in joined, or "" before.
func (p *Publisher) ParticipantID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.participantID
}

// Conn returns the signalling connection, or nil before Start.
func (p *Publisher) Conn() *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{
		VideoPackets: p.videoPackets.Load(),
		AudioPackets: p.audioPackets.Load(),
		VideoFrames:  p.videoFrames.Load(),
		Keyframes:    p.keyframes.Load(),
		PLIs:         p.plis.Load(),
	}
}

// Start dials, joins, publishes (an offer with track metadata), trickles ICE
// candidates both ways, waits until the peer connection is connected, starts
// sending and returns once the first frame is written. ctx bounds Start only:
// media keeps flowing until Close. On error everything started is released.
func (p *Publisher) Start(ctx context.Context) error {
	if err := p.start(ctx); err != nil {
		_ = p.Close()
		return err
	}
	return nil
}

func (p *Publisher) start(ctx context.Context) error {
	p.mu.Lock()
	if p.closed || p.conn != nil {
		p.mu.Unlock()
		return errors.New("loadtest: publisher already started or closed")
	}
	p.mu.Unlock()
	cfg := p.cfg

	api, err := newAPI(cfg.Simulcast > 1, cfg.Codec)
	if err != nil {
		return err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("loadtest: new peer connection: %w", err)
	}
	remote := &remoteCandidates{pc: pc}
	local := &localCandidates{target: TargetPublisher}
	connected := make(chan struct{})
	failed := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			once.Do(func() { close(failed) })
		}
	})
	if cfg.WHIPURL != "" {
		if err := p.startWHIP(ctx, pc); err != nil {
			return err
		}
		return p.startSending(ctx, connected, failed, nil)
	}
	pc.OnICECandidate(local.onCandidate)

	conn, err := dial(ctx, cfg.URL, func(env Envelope) {
		if env.Type == TypeLayers {
			p.onLayers(env)
			return
		}
		if env.Type != TypeTrickle {
			return
		}
		var t Trickle
		if env.Decode(&t) == nil && t.Target == TargetPublisher {
			_ = remote.add(t.Candidate)
		}
	})
	if err != nil {
		_ = pc.Close()
		return err
	}
	if cfg.TokenSource != nil {
		conn.SetTokenSource(cfg.TokenSource)
	}
	local.conn = conn
	p.mu.Lock()
	p.pc, p.conn = pc, conn
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return errors.New("loadtest: publisher closed during start")
	}

	// A broadcaster does not watch: without auto_subscribe the server opens
	// no subscriber connection for it (and does not count it as a viewer).
	autoSubscribe := false
	joined, err := join(ctx, conn, cfg.Token, cfg.Room, cfg.Name, &autoSubscribe)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.participantID = joined.ParticipantID
	p.mu.Unlock()

	meta, err := p.addTracks(pc)
	if err != nil {
		return err
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("loadtest: create offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("loadtest: set local description: %w", err)
	}
	reply, err := conn.Request(ctx, TypePublish, PublishRequest{SDP: offer.SDP, Tracks: meta})
	if err != nil {
		return fmt.Errorf("loadtest: publish: %w", err)
	}
	var answer SDPMessage
	if err := reply.Decode(&answer); err != nil {
		return err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		return fmt.Errorf("loadtest: set remote description: %w", err)
	}
	if err := remote.flush(); err != nil {
		return err
	}
	local.release()
	return p.startSending(ctx, connected, failed, conn)
}

// startWHIP publishes over plain WHIP: one POST with the complete offer.
func (p *Publisher) startWHIP(ctx context.Context, pc *webrtc.PeerConnection) error {
	p.mu.Lock()
	p.pc = pc
	closed := p.closed
	p.mu.Unlock()
	if closed {
		_ = pc.Close()
		return errors.New("loadtest: publisher closed during start")
	}
	if _, err := p.addTracks(pc); err != nil {
		return err
	}
	resource, err := whipExchange(ctx, pc, p.cfg.WHIPURL, p.cfg.Token)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.whipResource = resource
	p.mu.Unlock()
	return nil
}

// startSending waits for the peer connection, starts the pacing goroutine
// and returns once the first frame is written. conn is nil over WHIP.
func (p *Publisher) startSending(ctx context.Context, connected, failed <-chan struct{}, conn *Conn) error {
	var connDone <-chan struct{}
	if conn != nil {
		connDone = conn.Done()
	}
	select {
	case <-connected:
	case <-failed:
		return errors.New("loadtest: publisher peer connection failed")
	case <-connDone:
		return fmt.Errorf("loadtest: publisher: %w", conn.closedErr())
	case <-ctx.Done():
		return fmt.Errorf("loadtest: publisher waiting for ICE: %w", ctx.Err())
	}

	for _, vt := range p.video {
		if err := vt.stamp(); err != nil {
			return err
		}
	}
	sendCtx, cancel := context.WithCancel(context.Background())
	firstSent := make(chan struct{})
	paceDone := make(chan struct{})
	p.mu.Lock()
	p.cancel, p.paceDone = cancel, paceDone
	p.mu.Unlock()
	if !p.goOwned(func() { defer close(paceDone); p.pace(sendCtx, firstSent) }) {
		cancel()
		return errors.New("loadtest: publisher closed during start")
	}
	select {
	case <-firstSent:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// join sends join and decodes the joined reply.
func join(ctx context.Context, conn *Conn, token, room, name string, autoSubscribe *bool) (Joined, error) {
	reply, err := conn.Request(ctx, TypeJoin, JoinRequest{Token: token, Room: room, Name: name, AutoSubscribe: autoSubscribe})
	if err != nil {
		return Joined{}, fmt.Errorf("loadtest: join: %w", err)
	}
	var j Joined
	if err := reply.Decode(&j); err != nil {
		return Joined{}, err
	}
	return j, nil
}

// addTracks adds the video and audio tracks, starts one RTCP reader per
// sender, and returns the track metadata for publish.
func (p *Publisher) addTracks(pc *webrtc.PeerConnection) ([]TrackInfo, error) {
	cfg := p.cfg
	var meta []TrackInfo
	for i := range cfg.VideoTracks {
		id := fmt.Sprintf("video%d", i)
		if rids := simulcastRIDs(cfg.Simulcast); rids != nil {
			if err := p.addSimulcast(pc, id, rids); err != nil {
				return nil, err
			}
		} else {
			t, err := webrtc.NewTrackLocalStaticRTP(cfg.videoCodec(), id, "halo-loadtest")
			if err != nil {
				return nil, fmt.Errorf("loadtest: video track: %w", err)
			}
			vt := &videoTrack{track: t, src: cfg.newVideoSource(cfg.VideoBitrate)}
			sender, err := pc.AddTrack(t)
			if err != nil {
				return nil, fmt.Errorf("loadtest: add %s: %w", id, err)
			}
			p.video = append(p.video, vt)
			p.readRTCP(sender, vt)
		}
		source := "camera"
		if i < len(cfg.Sources) && cfg.Sources[i] != "" {
			source = cfg.Sources[i]
		}
		meta = append(meta, TrackInfo{TrackID: id, Source: source, Name: fmt.Sprintf("%s %d", source, i)})
	}
	if !cfg.NoAudio {
		t, err := webrtc.NewTrackLocalStaticRTP(opusCodec, "audio0", "halo-loadtest")
		if err != nil {
			return nil, fmt.Errorf("loadtest: audio track: %w", err)
		}
		sender, err := pc.AddTrack(t)
		if err != nil {
			return nil, fmt.Errorf("loadtest: add audio0: %w", err)
		}
		p.audio, p.audioSrc = t, newOpusSource(cfg.AudioDTX)
		p.readRTCP(sender, nil)
		meta = append(meta, TrackInfo{TrackID: "audio0", Source: "microphone", Name: "microphone"})
	}
	return meta, nil
}

// addSimulcast adds one video track sent in layers rids (lowest first):
// one transceiver, one encoding per layer, each with its own source and
// RTCP reader.
func (p *Publisher) addSimulcast(pc *webrtc.PeerConnection, id string, rids []string) error {
	cfg := p.cfg
	var tc *webrtc.RTPTransceiver
	for k, rid := range rids {
		t, err := webrtc.NewTrackLocalStaticRTP(cfg.videoCodec(), id, "halo-loadtest", webrtc.WithRTPStreamID(rid))
		if err != nil {
			return fmt.Errorf("loadtest: video track: %w", err)
		}
		if k == 0 {
			tc, err = pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		} else {
			err = tc.Sender().AddEncoding(t)
		}
		if err != nil {
			return fmt.Errorf("loadtest: add %s layer %s: %w", id, rid, err)
		}
		bitrate := cfg.VideoBitrate >> (2 * (len(rids) - 1 - k)) // a quarter per layer down
		vt := &videoTrack{track: t, src: cfg.newVideoSource(max(bitrate, 30_000)),
			rid: rid, trackID: id, tc: tc}
		p.video = append(p.video, vt)
		p.goOwned(func() {
			for {
				pkts, _, err := tc.Sender().ReadSimulcastRTCP(rid)
				if err != nil {
					return
				}
				p.onRTCP(pkts, vt)
			}
		})
	}
	return nil
}

// onLayers applies the server's layers message: the layers of a
// simulcast track its viewers want; the others are paused (a resumed one
// starts on a keyframe, as a browser's encoder does).
func (p *Publisher) onLayers(env Envelope) {
	var m struct {
		ClientTrackID string   `json:"client_track_id"`
		Active        []string `json:"active"`
	}
	if env.Decode(&m) != nil {
		return
	}
	for _, vt := range p.video {
		if vt.rid == "" || vt.trackID != m.ClientTrackID {
			continue
		}
		paused := !slices.Contains(m.Active, vt.rid)
		if vt.paused.Swap(paused) && !paused {
			vt.forceKey.Store(true)
		}
	}
}

// readRTCP starts the goroutine that reads a sender's RTCP (which also drives
// the interceptors: NACK responder, reports). PLI and FIR on a video sender
// request a keyframe. It ends when the peer connection closes.
func (p *Publisher) readRTCP(sender *webrtc.RTPSender, vt *videoTrack) {
	p.goOwned(func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			p.onRTCP(pkts, vt)
		}
	})
}

// onRTCP counts and answers keyframe requests for vt (nil: audio).
func (p *Publisher) onRTCP(pkts []rtcp.Packet, vt *videoTrack) {
	for _, pkt := range pkts {
		switch pkt.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			if vt != nil {
				p.plis.Add(1)
				vt.forceKey.Store(true)
			}
		}
	}
}

// goOwned runs f on a goroutine that Close waits for, unless Close has
// already begun; it reports whether f was started.
func (p *Publisher) goOwned(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// pace is the one sending goroutine: video frames every 1/FPS, audio packets
// every 20 ms, on deadlines kept against the clock (a late wake-up sends what
// is due without drifting; after a long stall it restarts the schedule).
func (p *Publisher) pace(ctx context.Context, firstSent chan<- struct{}) {
	frameEvery := time.Second / time.Duration(p.cfg.FPS)
	const audioEvery = 20 * time.Millisecond
	now := time.Now()
	nextVideo, nextAudio := now, now
	timer := time.NewTimer(0)
	defer timer.Stop()
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now = time.Now()
		if now.Sub(nextVideo) > time.Second || now.Sub(nextAudio) > time.Second {
			nextVideo, nextAudio = now, now // stalled: do not burst
		}
		for len(p.video) > 0 && !now.Before(nextVideo) {
			p.sendFrames(now)
			nextVideo = nextVideo.Add(frameEvery)
		}
		for p.audio != nil && !now.Before(nextAudio) {
			p.sendAudio()
			nextAudio = nextAudio.Add(audioEvery)
		}
		if first {
			first = false
			close(firstSent)
		}
		next := nextAudio
		if len(p.video) > 0 && (p.audio == nil || nextVideo.Before(next)) {
			next = nextVideo
		}
		timer.Reset(time.Until(next))
	}
}

func (p *Publisher) sendFrames(now time.Time) {
	sentAt := time.Now().UnixNano()
	p.frameTicks.Add(1)
	for _, vt := range p.video {
		if vt.paused.Load() {
			continue
		}
		key := vt.forceKey.Swap(false) || vt.lastKey.IsZero() || now.Sub(vt.lastKey) >= p.cfg.KeyframeInterval
		if key {
			vt.lastKey = now
			p.keyframes.Add(1)
		}
		n, _ := vt.src.writeFrame(vt.writer(), key, sentAt)
		p.videoPackets.Add(uint64(n))
		p.videoFrames.Add(1)
	}
}

func (p *Publisher) sendAudio() {
	// Write errors mean the connection is closing; Close ends the loop.
	if sent, _ := p.audioSrc.tick(p.audio); sent {
		p.audioPackets.Add(1)
	}
}

// leaveWait bounds how long Close waits for the server's goodbye.
const leaveWait = 3 * time.Second

// DropConnection simulates the publisher's network going away: its peer
// connection and socket close without a leave, as when a phone changes
// networks. The publisher is not usable afterwards; Close still releases it.
func (p *Publisher) DropConnection() {
	p.mu.Lock()
	conn, pc := p.conn, p.pc
	p.mu.Unlock()
	if pc != nil {
		_ = pc.Close()
	}
	if conn != nil {
		_ = conn.Close()
	}
}

// Close sends leave, closes the peer connection and the socket, and waits
// for every goroutine of the publisher. Safe to call more than once and
// before or during Start.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	conn, pc, cancel, resource, paceDone := p.conn, p.pc, p.cancel, p.whipResource, p.paceDone
	p.mu.Unlock()
	// The pacer stops, and has written its last packet, before the server
	// hears of the leave: every packet counted as sent left before the
	// goodbye, as a browser's last packets leave before its close.
	if cancel != nil {
		cancel()
	}
	if paceDone != nil {
		<-paceDone
	}
	whipDelete(resource, p.cfg.Token)
	var errs []error
	if conn != nil {
		// The server closes the socket once it has let the last packets
		// through (its goodbye); closing the peer connection first would
		// race them with the DTLS close_notify, which ends the server's
		// connection as soon as it is read.
		if _, err := conn.Send(TypeLeave, struct{}{}); err == nil {
			select {
			case <-conn.Done():
			case <-time.After(leaveWait):
			}
		}
	}
	if pc != nil {
		if err := pc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("loadtest: close publisher pc: %w", err))
		}
	}
	if conn != nil {
		_ = conn.Close()
	}
	p.wg.Wait()
	return errors.Join(errs...)
}
