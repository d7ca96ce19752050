package sfu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/halobuzz/live/internal/id"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// TrackMeta is what a publisher says about one of its tracks, keyed by the
// track id of its SDP a=msid line.
type TrackMeta struct {
	Source string
	Name   string
}

// PublisherEvents are the callbacks of a Publisher. They run on Pion's
// goroutines and must not block.
type PublisherEvents struct {
	// OnCandidate passes a local ICE candidate to the client (trickle).
	OnCandidate func(webrtc.ICECandidateInit)
	// TrackID, when set, names a new track (its TrackInfo has no ID yet):
	// the room gives a republished track the id of the one it replaces, so
	// viewers keep one track id across a broadcaster's reconnect. An empty
	// answer means a fresh id.
	TrackID func(TrackInfo) string
	// OnTrack is called when a published track starts; its reader is running.
	OnTrack func(*Track)
	// OnTrackEnded is called when a published track has ended.
	OnTrackEnded func(*Track)
	// OnFailed is called once when the connection fails or closes.
	OnFailed func()
	// OnLayers, when set, is told which simulcast layers (RIDs) of a track
	// its viewers want: the publisher should pause the others
	// (simulcast.go). The track is the one OnTrack announced.
	OnLayers func(t *Track, active []string)
}

// Publisher is a client's sending connection: the client offers, the SFU
// answers, and every track it sends becomes a Track.
type Publisher struct {
	e        *Engine
	pc       *webrtc.PeerConnection
	streamID string
	events   PublisherEvents

	mu      sync.Mutex
	meta    map[string]TrackMeta
	tracks  []*Track       // started, for markStopped
	pending candidateQueue // candidates that came before the offer
	closed  bool
	failed  sync.Once
	readers sync.WaitGroup
	relay   bool // the edge side of a relay (relay.go)
	// transport is its place in halo_publisher_transport (transport.go).
	transport connTransport
	// layers are the simulcast tracks by receiver: the room is told of the
	// first layer of each (simulcast.go).
	layers map[*webrtc.RTPReceiver]*Track
	// relayLayers are a relay's simulcast tracks by origin track id: each
	// layer comes as a track of its own (relay.go).
	relayLayers map[string]*Track
	// progress is RelayProgress's previous counts (relay_watch.go).
	progress map[*Track]relayMark
}

// PacketsIn counts the RTP packets the connection's tracks have taken in
// so far: a relay that stopped counting is silent (room checks its relays
// after a stall with it).
func (p *Publisher) PacketsIn() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n uint64
	for _, t := range p.tracks {
		n += t.written.Load()
	}
	return n
}

// NewPublisher creates a sending connection for the participant streamID.
func (e *Engine) NewPublisher(streamID string, ev PublisherEvents) (*Publisher, error) {
	return e.newPublisher(e.pubAPI, streamID, ev)
}

func (e *Engine) newPublisher(api *webrtc.API, streamID string, ev PublisherEvents) (*Publisher, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfu: new publisher connection: %w", err)
	}
	p := &Publisher{e: e, pc: pc, streamID: streamID, events: ev, meta: map[string]TrackMeta{}}
	e.stats.publishers.Add(1)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil && ev.OnCandidate != nil {
			ev.OnCandidate(c.ToJSON())
		}
	})
	e.watchPair(pc, nil, func(pair *webrtc.ICECandidatePair) {
		if !p.relay {
			p.transport.move(e, &e.transports.publishers, pair)
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected && !p.relay {
			p.transport.count(e, &e.transports.publishers, pc)
		}
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			p.failed.Do(func() {
				if ev.OnFailed != nil {
					ev.OnFailed()
				}
			})
		}
	})
	pc.OnTrack(p.onTrack)
	e.watchICE(pc, func() int {
		if p.relay {
			return ICERoleRelay
		}
		return ICERolePublisher
	})
	return p, nil
}

func (p *Publisher) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	meta := p.meta[remote.ID()]
	stream := p.streamID
	if p.relay {
		stream = remote.StreamID() // the origin's publisher, for lip sync
	}
	info := TrackInfo{
		StreamID: stream,
		Kind:     remote.Kind(),
		MimeType: remote.Codec().MimeType,
		Source:   meta.Source,
		Name:     meta.Name,
		ClientID: remote.ID(),
	}
	if tr := transceiverOf(p.pc, recv); tr != nil {
		info.MID = tr.Mid()
	}
	if !p.relay {
		info.Siblings = sendingTracks(p.pc.RemoteDescription())
	}
	if info.Source == "" {
		info.Source = "camera"
		if info.Kind == webrtc.RTPCodecTypeAudio {
			info.Source = "microphone"
		}
	}
	drainRID := ""
	if rid := remote.RID(); rid != "" {
		info.RID, drainRID = rid, rid
		for _, tr := range recv.Tracks() {
			info.Layers = append(info.Layers, tr.RID())
		}
		if primary := p.layers[recv]; primary != nil {
			p.addLayer(primary, remote, recv, info, drainRID)
			return
		}
	} else if base, rid, rids, ok := parseRelayLayerID(remote.ID()); ok && p.relay {
		info.ClientID, info.RID, info.Layers = base, rid, rids
		if primary := p.relayLayers[base]; primary != nil {
			p.addLayer(primary, remote, recv, info, "")
			return
		}
	}
	if p.events.TrackID != nil {
		info.ID = p.events.TrackID(info)
	}
	if info.ID == "" {
		info.ID = id.New("t_")
	}
	t := newTrack(p.e, remote, info, p.sendPLI)
	t.relay = p.relay
	if info.RID != "" {
		if p.layers == nil {
			p.layers, p.relayLayers = map[*webrtc.RTPReceiver]*Track{}, map[string]*Track{}
		}
		if drainRID != "" {
			p.layers[recv] = t
		} else {
			p.relayLayers[info.ClientID] = t
		}
		var onActive func([]string)
		if on := p.events.OnLayers; on != nil {
			onActive = func(active []string) { on(t, active) }
		}
		newLayerSet(p.e, info.Layers, onActive).add(t)
	}
	p.tracks = append(p.tracks, t)
	p.e.stats.tracks.Add(1)
	if t.relay {
		p.e.stats.relayTracksIn.Add(1)
	}
	p.readers.Add(2)
	p.mu.Unlock()

	// Announce the track before its reader starts, so that its end (which the
	// reader reports) can never come before its start.
	if p.events.OnTrack != nil {
		p.events.OnTrack(t)
	}
	go func() {
		defer p.readers.Done()
		drainRTCP(recv, drainRID, p.watched(t))
	}()
	go func() {
		defer p.readers.Done()
		t.readLoop()
		if p.events.OnTrackEnded != nil {
			p.events.OnTrackEnded(t)
		}
	}()
	// Ask for a keyframe at once so late joiners have a cached picture soon.
	t.RequestKeyframe()
}

// addLayer starts another simulcast layer of primary's track: a track of
// its own under the same id, that the room does not see. p.mu is held; it
// is released.
func (p *Publisher) addLayer(primary *Track, remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver, info TrackInfo, drainRID string) {
	info.ID, info.StreamID = primary.info.ID, primary.info.StreamID
	t := newTrack(p.e, remote, info, p.sendPLI)
	t.relay, t.extra = p.relay, true
	primary.group.add(t)
	p.tracks = append(p.tracks, t)
	p.readers.Add(2)
	p.mu.Unlock()
	go func() {
		defer p.readers.Done()
		drainRTCP(recv, drainRID, p.watched(t))
	}()
	go func() {
		defer p.readers.Done()
		t.readLoop()
	}()
	t.RequestKeyframe()
}

// sendingTracks counts the audio and video sections of a publisher's offer
// that send media (sendonly or sendrecv, not rejected with port 0). It
// parses the text: offer may be Pion's own description, whose Unmarshal
// would write a field Pion's goroutines read.
func sendingTracks(offer *webrtc.SessionDescription) int {
	if offer == nil {
		return 0
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(offer.SDP); err != nil {
		return 0
	}
	n := 0
	for _, m := range parsed.MediaDescriptions {
		if m.MediaName.Port.Value == 0 || (m.MediaName.Media != "audio" && m.MediaName.Media != "video") {
			continue
		}
		sends := true // sendrecv when the section names no direction
		for _, a := range m.Attributes {
			switch a.Key {
			case "recvonly", "inactive":
				sends = false
			case "sendonly", "sendrecv":
				sends = true
			}
		}
		if sends {
			n++
		}
	}
	return n
}

func transceiverOf(pc *webrtc.PeerConnection, recv *webrtc.RTPReceiver) *webrtc.RTPTransceiver {
	for _, tr := range pc.GetTransceivers() {
		if tr.Receiver() == recv {
			return tr
		}
	}
	return nil
}

// drainRTCP reads the publisher's RTCP (of simulcast layer rid, when set)
// so the interceptors see its sender reports.
func drainRTCP(recv *webrtc.RTPReceiver, rid string, watch *Track) {
	buf := make([]byte, 1500)
	for {
		var err error
		var n int
		if rid != "" {
			n, _, err = recv.ReadSimulcast(buf, rid)
		} else {
			n, _, err = recv.Read(buf)
		}
		if err != nil {
			return
		}
		if watch != nil {
			watch.noteReports(buf[:n])
		}
	}
}

func (p *Publisher) sendPLI(ssrc uint32) {
	_ = p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// HandleOffer applies the client's offer (first or renegotiation) and returns
// the SFU's answer. meta describes the offered tracks by client track id. With
// complete set, it waits for ICE gathering so the answer holds every
// candidate (WHIP); otherwise candidates follow through OnCandidate.
func (p *Publisher) HandleOffer(ctx context.Context, offer string, meta map[string]TrackMeta, complete bool) (string, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return "", ErrClosed
	}
	for k, v := range meta {
		p.meta[k] = v
	}
	p.mu.Unlock()
	p.markStopped(offer)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	answer, err := localAnswer(ctx, p.pc, complete)
	if err != nil {
		return "", err
	}
	p.flushCandidates()
	return answer, nil
}

func localAnswer(ctx context.Context, pc *webrtc.PeerConnection, complete bool) (string, error) {
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	var gathered <-chan struct{}
	if complete {
		gathered = webrtc.GatheringCompletePromise(pc)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("sfu: set local description: %w", err)
	}
	if complete {
		select {
		case <-gathered:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return pc.LocalDescription().SDP, nil
}

// AddCandidate adds a client's ICE candidate, keeping it until the offer has
// been applied when it comes first.
func (p *Publisher) AddCandidate(c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	if p.pc.RemoteDescription() == nil {
		err := p.pending.hold(c)
		p.mu.Unlock()
		return err
	}
	p.mu.Unlock()
	return addCandidate(p.pc, c)
}

func (p *Publisher) flushCandidates() {
	p.mu.Lock()
	pending := p.pending.take()
	p.mu.Unlock()
	pending.addTo(p.pc)
}

// Close ends the connection and waits for its track readers to stop; every
// track ends (OnTrackEnded runs for each).
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.pc.Close()
	p.readers.Wait()
	p.transport.release(&p.e.transports.publishers)
	p.e.stats.publishers.Add(-1)
	if p.relay {
		p.e.stats.relaysIn.Add(-1)
	}
	return err
}

// Errors returned by sessions; signalling maps them to wire codes.
var (
	ErrClosed           = errors.New("sfu: session closed")
	ErrInvalidSDP       = errors.New("sfu: invalid SDP")
	ErrUnsupportedCodec = errors.New("sfu: no supported codec offered")
	ErrInvalidCandidate = errors.New("sfu: invalid ICE candidate")
	ErrNoOffer          = errors.New("sfu: no offer is waiting for an answer")
)

var _ io.Closer = (*Publisher)(nil)
