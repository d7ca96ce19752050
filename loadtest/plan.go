package loadtest

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Plan is a scenario laid out: every participant with its identity, room
// and times. Scenario.Plan makes the same plan for the same scenario; a
// shard (Plan.Slice) keeps every N-th participant and changes nothing else,
// so the shards of a plan are disjoint and add up to it.
type Plan struct {
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	// Length is the time from the start of the viewers' clock to the end.
	Length     time.Duration      `json:"length_ns"`
	Rooms      []PlannedRoom      `json:"rooms"`
	Publishers []PlannedPublisher `json:"publishers"`
	Viewers    []PlannedViewer    `json:"viewers"`
	// Shard is the slice of the whole plan this is ("" for all of it).
	Shard Shard `json:"shard"`
	// ChatPerMinute, ReactionsPerMinute and Region are per viewer.
	ChatPerMinute, ReactionsPerMinute float64 `json:"-"`
	Region                            string  `json:"-"`
}

// PlannedRoom is a room and the tracks its publishers send, of the whole
// scenario (shards keep every room: a viewer in one shard may watch a
// publisher in another).
type PlannedRoom struct {
	Name        string `json:"name"`
	Publishers  int    `json:"publishers"`
	VideoTracks int    `json:"video_tracks"`
	AudioTracks int    `json:"audio_tracks"`
}

// PlannedPublisher is one publisher: it starts before the viewers' clock
// and publishes until the end.
type PlannedPublisher struct {
	Index    int       `json:"index"`
	Identity string    `json:"identity"`
	Room     string    `json:"room"`
	Media    MediaSpec `json:"-"`
}

// PlannedViewer is one viewer: it starts at Start on the viewers' clock and
// leaves at Leave, or stays to the end when Leave is 0.
type PlannedViewer struct {
	Index    int           `json:"index"`
	Identity string        `json:"identity"`
	Room     string        `json:"room"`
	Start    time.Duration `json:"start_ns"`
	Leave    time.Duration `json:"leave_ns,omitempty"`
}

// Shard is the Index-th (from 0) of Count deterministic slices of a plan.
// The zero value is the whole plan.
type Shard struct {
	Index, Count int
}

// ParseShard reads "i/N" (0 <= i < N).
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || n > 10_000 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: want i/N with 0 <= i < N <= 10000", s)
	}
	return Shard{Index: i, Count: n}, nil
}

// String returns "i/N", or "" for the whole plan.
func (s Shard) String() string {
	if s.Count <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// MarshalText writes String.
func (s Shard) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads "i/N" or "".
func (s *Shard) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = Shard{}
		return nil
	}
	v, err := ParseShard(string(b))
	*s = v
	return err
}

func (s Shard) holds(index int) bool { return s.Count <= 1 || index%s.Count == s.Index }

// Slice returns the participants of p that shard sh holds: publishers and
// viewers whose index modulo Count is Index. Rooms, identities and times
// are those of the whole plan.
func (p Plan) Slice(sh Shard) Plan {
	out := p
	out.Shard = sh
	out.Publishers = nil
	out.Viewers = nil
	for _, pub := range p.Publishers {
		if sh.holds(pub.Index) {
			out.Publishers = append(out.Publishers, pub)
		}
	}
	for _, v := range p.Viewers {
		if sh.holds(v.Index) {
			out.Viewers = append(out.Viewers, v)
		}
	}
	return out
}

// room returns the planned room named name.
func (p Plan) room(name string) PlannedRoom {
	for _, r := range p.Rooms {
		if r.Name == name {
			return r
		}
	}
	return PlannedRoom{Name: name}
}

// Plan lays the scenario out. The scenario must be valid (Validate).
func (s Scenario) Plan() Plan {
	s = s.withDefaults()
	p := Plan{
		Scenario:           s.Name,
		Seed:               s.Seed,
		ChatPerMinute:      s.Viewer.ChatPerMinute,
		ReactionsPerMinute: s.Viewer.ReactionsPerMinute,
		Region:             s.Viewer.Region,
	}
	if s.Social != nil {
		s.planSocial(&p)
	} else {
		s.planFixed(&p)
	}
	// Identities in start order: viewer n is the n-th to join.
	slices.SortStableFunc(p.Viewers, func(a, b PlannedViewer) int { return cmp.Compare(a.Start, b.Start) })
	for i := range p.Viewers {
		p.Viewers[i].Index = i
		p.Viewers[i].Identity = fmt.Sprintf("loadtest-viewer-%d", i)
	}
	for i := range p.Publishers {
		p.Publishers[i].Index = i
		p.Publishers[i].Identity = fmt.Sprintf("loadtest-publisher-%d", i)
	}
	if len(p.Publishers) == 1 {
		p.Publishers[0].Identity = "loadtest-publisher"
	}
	return p
}

func (s Scenario) roomNames(n int) []string {
	if n == 1 {
		return []string{s.RoomPrefix}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", s.RoomPrefix, i+1)
	}
	return names
}

// addRoom adds a room with pubs publishers of media.
func (p *Plan) addRoom(name string, pubs int, media MediaSpec) {
	video, audio := media.tracks()
	p.Rooms = append(p.Rooms, PlannedRoom{Name: name, Publishers: pubs, VideoTracks: pubs * video, AudioTracks: pubs * audio})
	for range pubs {
		p.Publishers = append(p.Publishers, PlannedPublisher{Room: name, Media: media})
	}
}

// planFixed: groups of rooms; viewer slots round-robin over the rooms,
// started at Ramp per second; with churn each slot is a chain of viewers.
func (s Scenario) planFixed(p *Plan) {
	total := 0
	for _, g := range s.Rooms {
		total += g.Count
	}
	names := s.roomNames(total)
	var slots []int // viewers per room
	i := 0
	for _, g := range s.Rooms {
		media := s.Publisher.merged(g.Publisher)
		for range g.Count {
			p.addRoom(names[i], g.Publishers, media)
			slots = append(slots, g.Viewers)
			i++
		}
	}
	// Round-robin: slot k goes to the k-th room that still wants a viewer.
	var order []string
	for round := 0; ; round++ {
		added := false
		for r, n := range slots {
			if round < n {
				order = append(order, names[r])
				added = true
			}
		}
		if !added {
			break
		}
	}
	rampEnd := time.Duration(float64(len(order)) / s.Ramp * float64(time.Second))
	p.Length = rampEnd + time.Duration(s.Duration)
	mean := time.Duration(s.Churn.MeanWatch)
	for k, room := range order {
		start := time.Duration(float64(k) / s.Ramp * float64(time.Second))
		if mean <= 0 {
			p.Viewers = append(p.Viewers, PlannedViewer{Room: room, Start: start})
			continue
		}
		// Each slot has its own random source: the plan of one slot does
		// not depend on the others.
		rng := rand.New(rand.NewPCG(s.Seed, uint64(k)+1))
		for t := start; ; {
			leave := t + expDuration(rng, mean)
			if leave >= p.Length {
				p.Viewers = append(p.Viewers, PlannedViewer{Room: room, Start: t})
				break
			}
			p.Viewers = append(p.Viewers, PlannedViewer{Room: room, Start: t, Leave: leave})
			t = leave
		}
	}
}

// planSocial: power-law audiences and Poisson arrivals.
func (s Scenario) planSocial(p *Plan) {
	so := *s.Social
	names := s.roomNames(so.Rooms)
	weights := make([]float64, so.Rooms)
	sum := 0.0
	for r := range weights {
		weights[r] = 1 / math.Pow(float64(r+1), so.Alpha)
		sum += weights[r]
	}
	cum := make([]float64, so.Rooms)
	acc := 0.0
	for r, w := range weights {
		acc += w / sum
		cum[r] = acc
	}
	for _, name := range names {
		p.addRoom(name, so.Publishers, s.Publisher)
	}
	p.Length = time.Duration(s.Duration)
	rng := rand.New(rand.NewPCG(s.Seed, 0))
	meanGap := time.Duration(float64(time.Second) / so.ArrivalRate)
	for t := expDuration(rng, meanGap); t < p.Length; t += expDuration(rng, meanGap) {
		u := rng.Float64()
		r, _ := slices.BinarySearch(cum, u)
		room := names[min(r, len(names)-1)]
		v := PlannedViewer{Room: room, Start: t}
		if leave := t + expDuration(rng, time.Duration(so.MeanWatch)); leave < p.Length {
			v.Leave = leave
		}
		p.Viewers = append(p.Viewers, v)
	}
}

// expDuration draws an exponentially distributed duration of the given
// mean, at least 1 ms.
func expDuration(rng *rand.Rand, mean time.Duration) time.Duration {
	return max(time.Duration(rng.ExpFloat64()*float64(mean)), time.Millisecond)
}

// errNoParticipants is returned by Run for a plan with nobody in it.
var errNoParticipants = errors.New("loadtest: the scenario has no publishers and no viewers (in this shard)")
