package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario describes a load test: which rooms exist, who publishes what in
// them, how the audience arrives, stays and leaves. It comes from command
// line flags or from a YAML file (ParseScenario; examples in
// loadtest/scenarios/), and Plan turns it into the same list of
// participants every time (a seeded random source), so that shards of one
// scenario run on several machines add up to the whole.
//
// Two shapes:
//   - fixed: Rooms groups, each Count rooms with Publishers publishers
//     and Viewers viewers; viewers start at Ramp per second, round-robin
//     over the rooms, and hold for Duration once all are started. With
//     Churn.MeanWatch a viewer leaves after an exponentially distributed
//     stay and a new one takes its place at once.
//   - social: Social.Rooms rooms whose audiences follow a power law (room r
//     gets a share proportional to 1/r^Alpha), viewers arriving as a
//     Poisson process at Social.ArrivalRate per second over Duration and
//     staying an exponentially distributed time of mean Social.MeanWatch.
type Scenario struct {
	// Name labels the reports.
	Name string `yaml:"name"`
	// Seed makes the plan reproducible; two runs with one seed have the same
	// identities, rooms, offsets and stays.
	Seed uint64 `yaml:"seed"`
	// Duration: fixed scenarios hold this long after the ramp; social ones
	// run this long in all. Default 30s.
	Duration Duration `yaml:"duration"`
	// Ramp is viewers started per second in fixed scenarios; default 50.
	Ramp float64 `yaml:"ramp"`
	// RoomPrefix names the rooms: "<prefix>-<n>", or the prefix alone for
	// a single room; default "loadtest".
	RoomPrefix string `yaml:"room_prefix"`
	// Rooms are the fixed room groups.
	Rooms []RoomGroup `yaml:"rooms"`
	// Social, when set, replaces Rooms with the social-live shape.
	Social *SocialLive `yaml:"social"`
	// Publisher is the default media of every publisher.
	Publisher MediaSpec `yaml:"publisher"`
	// Churn makes viewers of fixed scenarios leave and be replaced.
	Churn Churn `yaml:"churn"`
	// Viewer is what each viewer does besides watching.
	Viewer ViewerSpec `yaml:"viewer"`
}

// RoomGroup is Count rooms alike: Publishers publishers and Viewers viewers
// each, and optionally their own media.
type RoomGroup struct {
	Count      int        `yaml:"count"`
	Publishers int        `yaml:"publishers"`
	Viewers    int        `yaml:"viewers"`
	Publisher  *MediaSpec `yaml:"publisher"`
}

// SocialLive is the social-live audience shape.
type SocialLive struct {
	// Rooms is the number of live rooms, one publisher each unless
	// Publishers says otherwise.
	Rooms      int `yaml:"rooms"`
	Publishers int `yaml:"publishers"`
	// Alpha is the power-law exponent of audience sizes; default 1.2.
	Alpha float64 `yaml:"alpha"`
	// ArrivalRate is viewers arriving per second, across all rooms.
	ArrivalRate float64 `yaml:"arrival_rate"`
	// MeanWatch is the mean stay of a viewer; default 60s. The audience
	// settles near ArrivalRate x MeanWatch.
	MeanWatch Duration `yaml:"mean_watch"`
}

// Churn makes viewers leave: each stays an exponentially distributed time
// of mean MeanWatch and is replaced at once by a new viewer (a new
// identity) in the same room. Zero: nobody leaves before the end.
type Churn struct {
	MeanWatch Duration `yaml:"mean_watch"`
}

// MediaSpec is what a publisher sends. Zero fields take the defaults of
// PublisherConfig.
type MediaSpec struct {
	VideoKbps        int      `yaml:"video_kbps"`
	FPS              int      `yaml:"fps"`
	KeyframeInterval Duration `yaml:"keyframe_interval"`
	VideoTracks      *int     `yaml:"video_tracks"`
	Audio            *bool    `yaml:"audio"`
	// AudioDTX: the audio talks and pauses as Opus DTX does (default
	// true); false sends 50 packets a second throughout.
	AudioDTX *bool `yaml:"audio_dtx"`
	// Simulcast is the number of layers per video track (2 or 3; 0: none),
	// see PublisherConfig.Simulcast.
	Simulcast int `yaml:"simulcast"`
	// Codec is the video codec: vp8 (default) or h264.
	Codec string `yaml:"codec"`
}

// ViewerSpec is what each viewer does besides watching.
type ViewerSpec struct {
	// Region is sent as ?region= (a cluster routes by it).
	Region string `yaml:"region"`
	// ChatPerMinute and ReactionsPerMinute are the mean rates of chat
	// messages and reactions each viewer sends (Poisson).
	ChatPerMinute      float64 `yaml:"chat_per_minute"`
	ReactionsPerMinute float64 `yaml:"reactions_per_minute"`
}

// Duration is a time.Duration that reads "30s" or "2m" from YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 30s: %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Limits of a scenario: one file must not ask for more than a cluster of
// load testers could run, nor make the planner allocate without bound.
const (
	maxPlannedParticipants = 1_000_000
	maxScenarioDuration    = 24 * time.Hour
	maxScenarioBytes       = 1 << 20
	maxVideoTracks         = 8
)

// ErrScenario is wrapped by every error of ParseScenario and Validate.
var ErrScenario = errors.New("bad scenario")

// ParseScenario reads a YAML scenario; unknown keys are errors (a typo
// must not silently become a default). The result is validated.
func ParseScenario(data []byte) (Scenario, error) {
	var s Scenario
	if len(data) > maxScenarioBytes {
		return s, fmt.Errorf("%w: more than %d bytes", ErrScenario, maxScenarioBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return Scenario{}, fmt.Errorf("%w: %w", ErrScenario, err)
	}
	if err := s.Validate(); err != nil {
		return Scenario{}, err
	}
	return s, nil
}

// withDefaults fills the zero fields.
func (s Scenario) withDefaults() Scenario {
	if s.Duration <= 0 {
		s.Duration = Duration(30 * time.Second)
	}
	if s.Ramp <= 0 {
		s.Ramp = 50
	}
	if s.RoomPrefix == "" {
		s.RoomPrefix = "loadtest"
	}
	if s.Social != nil {
		so := *s.Social
		if so.Alpha == 0 {
			so.Alpha = 1.2
		}
		if so.MeanWatch <= 0 {
			so.MeanWatch = Duration(60 * time.Second)
		}
		if so.Publishers <= 0 {
			so.Publishers = 1
		}
		s.Social = &so
	}
	return s
}

// Validate reports the first field that makes no sense, by its YAML name.
func (s Scenario) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrScenario, field, fmt.Sprintf(format, args...))
	}
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	switch {
	case s.Duration < 0 || time.Duration(s.Duration) > maxScenarioDuration:
		return bad("duration", "%s is outside 0..%s", time.Duration(s.Duration), maxScenarioDuration)
	case !finite(s.Ramp) || s.Ramp < 0:
		return bad("ramp", "%v is not a rate >= 0", s.Ramp)
	case s.Churn.MeanWatch < 0:
		return bad("churn.mean_watch", "negative")
	case strings.ContainsAny(s.RoomPrefix, "/?#% \t\n"):
		return bad("room_prefix", "%q holds characters a room name cannot", s.RoomPrefix)
	case !finite(s.Viewer.ChatPerMinute) || s.Viewer.ChatPerMinute < 0 || s.Viewer.ChatPerMinute > 600:
		return bad("viewer.chat_per_minute", "%v is outside 0..600", s.Viewer.ChatPerMinute)
	case !finite(s.Viewer.ReactionsPerMinute) || s.Viewer.ReactionsPerMinute < 0 || s.Viewer.ReactionsPerMinute > 600:
		return bad("viewer.reactions_per_minute", "%v is outside 0..600", s.Viewer.ReactionsPerMinute)
	case strings.ContainsAny(s.Viewer.Region, "&#/? \t\n"):
		return bad("viewer.region", "%q is not a region name", s.Viewer.Region)
	}
	if err := s.Publisher.validate("publisher"); err != nil {
		return err
	}
	total, viewers := 0, 0
	if so := s.Social; so != nil {
		if len(s.Rooms) > 0 {
			return bad("social", "give rooms or social, not both")
		}
		switch {
		case so.Rooms < 1 || so.Rooms > 100_000:
			return bad("social.rooms", "%d is outside 1..100000", so.Rooms)
		case so.Publishers < 0 || so.Publishers > 16:
			return bad("social.publishers", "%d is outside 0..16", so.Publishers)
		case !finite(so.Alpha) || so.Alpha < 0 || so.Alpha > 5:
			return bad("social.alpha", "%v is outside 0..5", so.Alpha)
		case !finite(so.ArrivalRate) || so.ArrivalRate <= 0:
			return bad("social.arrival_rate", "%v is not a rate > 0", so.ArrivalRate)
		case so.MeanWatch < 0:
			return bad("social.mean_watch", "negative")
		}
		d := time.Duration(s.withDefaults().Duration).Seconds()
		if so.ArrivalRate*d+float64(so.Rooms*max(so.Publishers, 1)) > maxPlannedParticipants {
			return bad("social.arrival_rate", "%v/s for %.0fs is more than %d participants", so.ArrivalRate, d, maxPlannedParticipants)
		}
		return nil
	}
	for i, g := range s.Rooms {
		field := fmt.Sprintf("rooms[%d]", i)
		switch {
		case g.Count < 1 || g.Count > 100_000:
			return bad(field+".count", "%d is outside 1..100000", g.Count)
		case g.Publishers < 0 || g.Publishers > 16:
			return bad(field+".publishers", "%d is outside 0..16", g.Publishers)
		case g.Viewers < 0 || g.Viewers > maxPlannedParticipants:
			return bad(field+".viewers", "%d is outside 0..%d", g.Viewers, maxPlannedParticipants)
		}
		if g.Publisher != nil {
			if err := g.Publisher.validate(field + ".publisher"); err != nil {
				return err
			}
		}
		total += g.Count * (g.Publishers + g.Viewers)
		viewers += g.Count * g.Viewers
		if total > maxPlannedParticipants {
			return bad("rooms", "more than %d participants", maxPlannedParticipants)
		}
	}
	d := s.withDefaults()
	ramp := time.Duration(float64(viewers) / d.Ramp * float64(time.Second))
	if float64(viewers)/d.Ramp > maxScenarioDuration.Seconds() {
		return bad("ramp", "%v a second takes more than %s to start %d viewers", d.Ramp, maxScenarioDuration, viewers)
	}
	if mean := time.Duration(s.Churn.MeanWatch); mean > 0 {
		length := ramp + time.Duration(d.Duration)
		if stays := float64(viewers) * (1 + length.Seconds()/mean.Seconds()); stays > maxPlannedParticipants {
			return bad("churn.mean_watch", "%s makes about %.0f viewers, more than %d", mean, stays, maxPlannedParticipants)
		}
	}
	return nil
}

func (m MediaSpec) validate(field string) error {
	bad := func(sub, format string, args ...any) error {
		return fmt.Errorf("%w: %s.%s: %s", ErrScenario, field, sub, fmt.Sprintf(format, args...))
	}
	switch {
	case m.VideoKbps < 0 || m.VideoKbps > 50_000:
		return bad("video_kbps", "%d is outside 0..50000", m.VideoKbps)
	case m.FPS < 0 || m.FPS > 120:
		return bad("fps", "%d is outside 0..120", m.FPS)
	case m.KeyframeInterval < 0 || time.Duration(m.KeyframeInterval) > time.Hour:
		return bad("keyframe_interval", "%s is outside 0..1h", time.Duration(m.KeyframeInterval))
	case m.VideoTracks != nil && (*m.VideoTracks < 0 || *m.VideoTracks > maxVideoTracks):
		return bad("video_tracks", "%d is outside 0..%d", *m.VideoTracks, maxVideoTracks)
	case m.Codec != "" && m.Codec != CodecVP8 && m.Codec != CodecH264:
		return bad("codec", "%q is not vp8 or h264", m.Codec)
	case m.Simulcast < 0 || m.Simulcast > maxSimulcastLayers:
		return bad("simulcast", "%d is outside 0..%d layers", m.Simulcast, maxSimulcastLayers)
	case m.VideoTracks != nil && *m.VideoTracks == 0 && m.Audio != nil && !*m.Audio:
		return bad("audio", "no video tracks and no audio: nothing to publish")
	}
	return nil
}

// merged returns m with the fields o sets.
func (m MediaSpec) merged(o *MediaSpec) MediaSpec {
	if o == nil {
		return m
	}
	if o.VideoKbps != 0 {
		m.VideoKbps = o.VideoKbps
	}
	if o.FPS != 0 {
		m.FPS = o.FPS
	}
	if o.KeyframeInterval != 0 {
		m.KeyframeInterval = o.KeyframeInterval
	}
	if o.VideoTracks != nil {
		m.VideoTracks = o.VideoTracks
	}
	if o.Audio != nil {
		m.Audio = o.Audio
	}
	if o.AudioDTX != nil {
		m.AudioDTX = o.AudioDTX
	}
	if o.Simulcast != 0 {
		m.Simulcast = o.Simulcast
	}
	if o.Codec != "" {
		m.Codec = o.Codec
	}
	return m
}

// publisherConfig is the PublisherConfig of m (without URL and token).
func (m MediaSpec) publisherConfig() PublisherConfig {
	c := PublisherConfig{
		VideoBitrate:     m.VideoKbps * 1000,
		FPS:              m.FPS,
		KeyframeInterval: time.Duration(m.KeyframeInterval),
		AudioDTX:         m.AudioDTX == nil || *m.AudioDTX,
		Simulcast:        m.Simulcast,
		Codec:            m.Codec,
	}
	if m.VideoTracks != nil {
		c.VideoTracks = *m.VideoTracks
		c.NoVideo = *m.VideoTracks == 0
	}
	if m.Audio != nil {
		c.NoAudio = !*m.Audio
	}
	return c
}

// tracks is the number of tracks a publisher of m sends.
func (m MediaSpec) tracks() (video, audio int) {
	c := m.publisherConfig().withDefaults()
	if !c.NoAudio {
		audio = 1
	}
	return c.VideoTracks, audio
}
