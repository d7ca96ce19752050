package sfu

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pion/webrtc/v4"
)

// Cascade relay between nodes. An edge node (B) with viewers of a room whose
// broadcaster publishes on an origin node (A) pulls each track from A ONCE,
// over one WebRTC connection between the two engines, and fans it out
// locally:
//
//   - On A the relay is a viewer like any other (NewRelayOut): a Subscriber
//     that answers B's receive-only offer with down-tracks of A's tracks. Its
//     NACKs are answered from A's cache without the per-viewer budget (one
//     relay carries a whole node's audience), its PLIs from A's cached
//     picture first, merged with A's other viewers' requests.
//   - On B the relay is a publisher (NewRelayIn): every track it receives is
//     an ordinary Track (one cache, late-joiner replay, B's viewers' NACKs
//     answered from B's cache, keyframe requests merged on B and sent to A as
//     one PLI), named with the origin's track id, so B's down-tracks do not
//     know where the packets come from. B's NACK generator asks A for what
//     was lost between the nodes, once for all of B's viewers.
//
// The SFU of B is the offerer (like a WHEP player): B asks A for the tracks
// it needs, A answers with them.

// NewRelayOut creates the origin side of a relay: a Subscriber whose
// down-tracks are not held to sfu.nack_budget. Use AnswerOffer with the
// tracks the edge asked for.
func (e *Engine) NewRelayOut(ev SubscriberEvents) (*Subscriber, error) {
	s, err := e.NewSubscriber(ev)
	if err != nil {
		return nil, err
	}
	s.relay = true
	e.stats.relaysOut.Add(1)
	return s, nil
}

// NewRelayIn creates the edge side of a relay: a receiving connection whose
// tracks (named by the origin's track ids, in the stream streamID) become
// Tracks, announced through ev.OnTrack. Call OfferRelay, send the offer to
// the origin, and apply its answer with AcceptRelayAnswer.
func (e *Engine) NewRelayIn(streamID string, ev PublisherEvents) (*Publisher, error) {
	keep := ev.TrackID
	ev.TrackID = func(info TrackInfo) string {
		if keep != nil {
			if id := keep(info); id != "" {
				return id
			}
		}
		return info.ClientID // the origin's track id (its msid)
	}
	p, err := e.newPublisher(e.relayInAPI, streamID, ev)
	if err != nil {
		return nil, err
	}
	p.relay = true
	e.stats.relaysIn.Add(1)
	return p, nil
}

// OfferRelay adds receive-only media sections for audio and video tracks
// and returns the complete offer (every ICE candidate in it) for the origin.
func (p *Publisher) OfferRelay(ctx context.Context, audio, video int) (string, error) {
	if !p.relay {
		return "", fmt.Errorf("sfu: OfferRelay on a publisher that is not a relay")
	}
	for kind, n := range map[webrtc.RTPCodecType]int{webrtc.RTPCodecTypeAudio: audio, webrtc.RTPCodecTypeVideo: video} {
		for range n {
			if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				return "", fmt.Errorf("sfu: relay transceiver: %w", err)
			}
		}
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return "", fmt.Errorf("sfu: relay offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("sfu: relay offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return p.pc.LocalDescription().SDP, nil
}

// AcceptRelayAnswer applies the origin's answer to OfferRelay's offer.
func (p *Publisher) AcceptRelayAnswer(answer string) error {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSDP, err)
	}
	return nil
}

// A relay carries each simulcast layer of a track as a track of its own,
// whose msid track id names the origin's track, the layer and the set:
// "<track id>~<rid>~<rid>.<rid>.<rid>". The edge gathers them into one
// simulcast track again, so its viewers choose among the layers as the
// origin's do.

// relayLayerID is the msid track id of layer rid of track id.
func relayLayerID(id, rid string, rids []string) string {
	return id + "~" + rid + "~" + strings.Join(rids, ".")
}

// parseRelayLayerID reads relayLayerID; ok is false for a plain track id.
func parseRelayLayerID(s string) (id, rid string, rids []string, ok bool) {
	id, rest, found := strings.Cut(s, "~")
	if !found || id == "" {
		return "", "", nil, false
	}
	rid, set, found := strings.Cut(rest, "~")
	if !found || rid == "" || set == "" {
		return "", "", nil, false
	}
	rids = strings.Split(set, ".")
	if len(rids) > 3 || !slices.Contains(rids, rid) {
		return "", "", nil, false
	}
	for _, r := range rids {
		if r == "" || len(r) > 16 {
			return "", "", nil, false
		}
	}
	return id, rid, rids, true
}
