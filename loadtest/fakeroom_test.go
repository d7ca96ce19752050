package loadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// fakeRoom is a stand-in signalling server for testing the clients of this
// package before (and independently of) the real server: one room, real Pion
// peer connections over loopback, each publisher track forwarded to every
// subscriber from its first keyframe on. It speaks just enough of
// docs/protocol.md for Publisher, Viewer and Run; it is not a claim about the
// real server's behaviour.
type fakeRoom struct {
	t   *testing.T
	api *webrtc.API
	srv *httptest.Server

	mu       sync.Mutex
	closed   bool
	nextID   int
	tracks   []*fakeTrack
	subs     []*fakeSession
	publishs []PublishRequest
	wg       sync.WaitGroup

	serverFrames, serverKeyframes atomic.Uint64
	rrWithLSR                     atomic.Uint64 // subscribers' receiver reports that echo a sender report
	firstFrame                    atomic.Pointer[VP8Info]

	nackMu sync.Mutex
	nacks  []receivedNACK // the first 100 NACKs from subscribers
}

// receivedNACK is a NACK a subscriber sent about the down-track of ssrc.
type receivedNACK struct {
	ssrc uint32
	nack *rtcp.TransportLayerNack
}

func (r *fakeRoom) gotNACK(ssrc uint32, n *rtcp.TransportLayerNack) {
	r.nackMu.Lock()
	defer r.nackMu.Unlock()
	if len(r.nacks) < 100 {
		r.nacks = append(r.nacks, receivedNACK{ssrc: ssrc, nack: n})
	}
}

func (r *fakeRoom) receivedNACKs() []receivedNACK {
	r.nackMu.Lock()
	defer r.nackMu.Unlock()
	return append([]receivedNACK(nil), r.nacks...)
}

// fakeTrack is one published track and the subscribers' copies of it.
type fakeTrack struct {
	id    string
	video bool
	ssrc  webrtc.SSRC
	pub   *webrtc.PeerConnection
	codec webrtc.RTPCodecCapability
	mu    sync.Mutex
	downs []*fakeDown
}

type fakeDown struct {
	track   *boundTrack
	sess    *fakeSession
	started bool
}

// ready reports whether packets written now reach the subscriber: the track
// is bound and DTLS is up (Pion drops earlier writes).
func (d *fakeDown) ready() bool { return d.track.bound.Load() && d.sess.connected.Load() }

// boundTrack is a TrackLocalStaticRTP that remembers being bound.
type boundTrack struct {
	*webrtc.TrackLocalStaticRTP
	bound atomic.Bool
}

func (b *boundTrack) Bind(c webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	p, err := b.TrackLocalStaticRTP.Bind(c)
	if err == nil {
		b.bound.Store(true)
	}
	return p, err
}

// fakeSession is one WebSocket client.
type fakeSession struct {
	room *fakeRoom
	ws   *websocket.Conn
	wmu  sync.Mutex

	mu                 sync.Mutex
	pub, sub           *webrtc.PeerConnection
	pubCands, subCands *remoteCandidates
	offerOut, again    bool
	connected          atomic.Bool // subscriber connection
}

func newFakeRoom(t *testing.T) *fakeRoom {
	t.Helper()
	api, err := newAPI(false, "")
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRoom{t: t, api: api}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.srv.Close()
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *fakeRoom) url() string { return "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/ws" }

// goOwned runs f on a goroutine the cleanup waits for, unless it began.
func (r *fakeRoom) goOwned(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

func (r *fakeRoom) serve(w http.ResponseWriter, req *http.Request) {
	ws, err := (&websocket.Upgrader{}).Upgrade(w, req, nil)
	if err != nil {
		return
	}
	s := &fakeSession{room: r, ws: ws}
	started := r.goOwned(func() {
		defer s.close()
		for {
			var env Envelope
			if err := ws.ReadJSON(&env); err != nil {
				return
			}
			if err := s.handle(env); err != nil {
				s.send(Envelope{V: 1, Type: TypeError, ID: env.ID, Data: mustJSON(ProtocolError{Code: "internal", Message: err.Error()})})
			}
			if env.Type == TypeLeave {
				return
			}
		}
	})
	if !started {
		_ = ws.Close()
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (s *fakeSession) send(env Envelope) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.ws.WriteJSON(env)
}

func (s *fakeSession) close() {
	_ = s.ws.Close()
	s.mu.Lock()
	pub, sub := s.pub, s.sub
	s.mu.Unlock()
	for _, pc := range []*webrtc.PeerConnection{pub, sub} {
		if pc != nil {
			_ = pc.Close()
		}
	}
	s.room.mu.Lock()
	for i, x := range s.room.subs {
		if x == s {
			s.room.subs = append(s.room.subs[:i], s.room.subs[i+1:]...)
			break
		}
	}
	s.room.mu.Unlock()
}

func (s *fakeSession) handle(env Envelope) error {
	r := s.room
	switch env.Type {
	case TypeJoin:
		var j JoinRequest
		if err := env.Decode(&j); err != nil {
			return err
		}
		r.mu.Lock()
		r.nextID++
		id := fmt.Sprintf("p_%d", r.nextID)
		r.mu.Unlock()
		s.send(Envelope{V: 1, Type: TypeJoined, ID: env.ID, Data: mustJSON(Joined{ParticipantID: id, Room: j.Room})})
		if j.AutoSubscribe != nil && *j.AutoSubscribe {
			return s.subscribe()
		}
	case TypePublish:
		var p PublishRequest
		if err := env.Decode(&p); err != nil {
			return err
		}
		r.mu.Lock()
		r.publishs = append(r.publishs, p)
		r.mu.Unlock()
		return s.publish(env.ID, p)
	case TypeAnswer:
		var a SDPMessage
		if err := env.Decode(&a); err != nil {
			return err
		}
		if err := s.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: a.SDP}); err != nil {
			return err
		}
		if err := s.subCands.flush(); err != nil {
			return err
		}
		s.mu.Lock()
		s.offerOut = false
		again := s.again
		s.mu.Unlock()
		if again {
			return s.offer()
		}
	case TypeTrickle:
		var tr Trickle
		if err := env.Decode(&tr); err != nil {
			return err
		}
		s.mu.Lock()
		cands := s.pubCands
		if tr.Target == TargetSubscriber {
			cands = s.subCands
		}
		s.mu.Unlock()
		if cands != nil {
			return cands.add(tr.Candidate)
		}
	}
	return nil
}

func (s *fakeSession) trickler(target string) func(*webrtc.ICECandidate) {
	return func(c *webrtc.ICECandidate) {
		var init *webrtc.ICECandidateInit
		if c != nil {
			ci := c.ToJSON()
			init = &ci
		}
		s.send(Envelope{V: 1, Type: TypeTrickle, Data: mustJSON(Trickle{Target: target, Candidate: init})})
	}
}

func (s *fakeSession) publish(id int64, p PublishRequest) error {
	r := s.room
	pc, err := r.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.pub, s.pubCands = pc, &remoteCandidates{pc: pc}
	cands := s.pubCands
	s.mu.Unlock()
	pc.OnICECandidate(s.trickler(TargetPublisher))
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		ft := &fakeTrack{
			id:    "t_" + remote.ID(),
			video: remote.Kind() == webrtc.RTPCodecTypeVideo,
			ssrc:  remote.SSRC(),
			pub:   pc,
			codec: remote.Codec().RTPCodecCapability,
		}
		r.mu.Lock()
		r.tracks = append(r.tracks, ft)
		subs := append([]*fakeSession(nil), r.subs...)
		r.mu.Unlock()
		for _, sub := range subs {
			if sub.addDown(ft) == nil {
				_ = sub.offer()
			}
		}
		r.goOwned(func() { r.forward(remote, ft) })
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: p.SDP}); err != nil {
		return err
	}
	if err := cands.flush(); err != nil {
		return err
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return err
	}
	s.send(Envelope{V: 1, Type: TypeAnswer, ID: id, Data: mustJSON(SDPMessage{SDP: answer.SDP})})
	return nil
}

// forward copies a published track to its subscribers; video goes to a
// subscriber only from a keyframe on, and a subscriber waiting for one
// triggers a PLI (at most every 100 ms).
func (r *fakeRoom) forward(remote *webrtc.TrackRemote, ft *fakeTrack) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	var lastPLI time.Time
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		key := false
		if ft.video {
			info, err := ParseVP8(pkt.Payload)
			if err == nil && info.FrameStart {
				r.serverFrames.Add(1)
				r.firstFrame.CompareAndSwap(nil, &info)
				if info.Keyframe {
					key = true
					r.serverKeyframes.Add(1)
				}
			}
		}
		waiting := false
		ft.mu.Lock()
		for _, d := range ft.downs {
			if !d.started && d.ready() {
				d.started = !ft.video || key
				waiting = waiting || !d.started
			}
			if d.started {
				_ = d.track.WriteRTP(&pkt)
			}
		}
		ft.mu.Unlock()
		if waiting && time.Since(lastPLI) > 100*time.Millisecond {
			lastPLI = time.Now()
			_ = ft.pub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ft.ssrc)}})
		}
	}
}

// requestKeyframe sends a PLI for every published video track.
func (r *fakeRoom) requestKeyframe() {
	r.mu.Lock()
	tracks := append([]*fakeTrack(nil), r.tracks...)
	r.mu.Unlock()
	for _, ft := range tracks {
		if ft.video {
			_ = ft.pub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ft.ssrc)}})
		}
	}
}

func (s *fakeSession) subscribe() error {
	r := s.room
	pc, err := r.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	pc.OnICECandidate(s.trickler(TargetSubscriber))
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			s.connected.Store(true)
		}
	})
	s.mu.Lock()
	s.sub, s.subCands = pc, &remoteCandidates{pc: pc}
	s.mu.Unlock()
	r.mu.Lock()
	r.subs = append(r.subs, s)
	tracks := append([]*fakeTrack(nil), r.tracks...)
	r.mu.Unlock()
	for _, ft := range tracks {
		if err := s.addDown(ft); err != nil {
			return err
		}
	}
	if len(tracks) == 0 {
		return nil // offered when the first track arrives
	}
	return s.offer()
}

func (s *fakeSession) addDown(ft *fakeTrack) error {
	static, err := webrtc.NewTrackLocalStaticRTP(ft.codec, ft.id, ft.id)
	if err != nil {
		return err
	}
	local := &boundTrack{TrackLocalStaticRTP: static}
	sender, err := s.sub.AddTrack(local)
	if err != nil {
		return err
	}
	ssrc := uint32(sender.GetParameters().Encodings[0].SSRC)
	s.room.goOwned(func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				switch p := p.(type) {
				case *rtcp.TransportLayerNack:
					s.room.gotNACK(ssrc, p)
				case *rtcp.ReceiverReport:
					for _, rr := range p.Reports {
						if rr.SSRC == ssrc && rr.LastSenderReport != 0 {
							s.room.rrWithLSR.Add(1)
						}
					}
				}
			}
		}
	})
	ft.mu.Lock()
	ft.downs = append(ft.downs, &fakeDown{track: local, sess: s})
	ft.mu.Unlock()
	return nil
}

// offer sends an offer on the subscriber connection, or, when one is
// outstanding, another once it is answered.
func (s *fakeSession) offer() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offerOut {
		s.again = true
		return nil
	}
	s.offerOut, s.again = true, false
	offer, err := s.sub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := s.sub.SetLocalDescription(offer); err != nil {
		return err
	}
	s.send(Envelope{V: 1, Type: TypeOffer, Data: mustJSON(SDPMessage{SDP: offer.SDP})})
	return nil
}
