package loadtest

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, yaml string) Scenario {
	t.Helper()
	s, err := ParseScenario([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseScenario_ShippedExamplesParseAndPlan(t *testing.T) {
	files, err := filepath.Glob("scenarios/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseScenario(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		p := s.Plan()
		if s.Name == "" || len(p.Rooms) == 0 || len(p.Viewers) == 0 || p.Length <= 0 {
			t.Fatalf("%s: plan %d rooms %d viewers length %s", f, len(p.Rooms), len(p.Viewers), p.Length)
		}
	}
}

func TestParseScenario_BadInputNamesTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"rooms: [{count: 1, viewers: 2}]\nviewerz: 3\n", "field viewerz not found"},
		{"duration: soon\n", "duration"},
		{"duration: 48h\n", "duration"},
		{"ramp: -1\n", "ramp"},
		{"ramp: .nan\n", "ramp"},
		{"rooms: [{count: 0}]\n", "rooms[0].count"},
		{"rooms: [{count: 1, viewers: -1}]\n", "rooms[0].viewers"},
		{"rooms: [{count: 100000, viewers: 100}]\n", "participants"},
		{"rooms: [{count: 1, publisher: {fps: 1000}}]\n", "rooms[0].publisher.fps"},
		{"publisher: {video_tracks: 0, audio: false}\n", "nothing to publish"},
		{"publisher: {simulcast: 4}\n", "publisher.simulcast: 4 is outside 0..3 layers"},
		{"publisher: {codec: av1}\n", "publisher.codec: \"av1\" is not vp8 or h264"},
		{"publisher: {video_kbps: -5}\n", "publisher.video_kbps"},
		{"social: {rooms: 3}\n", "social.arrival_rate"},
		{"social: {rooms: 3, arrival_rate: 1}\nrooms: [{count: 1}]\n", "not both"},
		{"social: {rooms: 3, arrival_rate: 100000}\nduration: 24h\n", "participants"},
		{"social: {rooms: 3, arrival_rate: 1, alpha: 9}\n", "social.alpha"},
		{"viewer: {region: \"a&b\"}\n", "viewer.region"},
		{"viewer: {chat_per_minute: 1e9}\n", "viewer.chat_per_minute"},
		{"room_prefix: \"a/b\"\n", "room_prefix"},
		{"churn: {mean_watch: -1s}\n", "churn.mean_watch"},
		{"- just\n- a list\n", "cannot unmarshal"},
	} {
		_, err := ParseScenario([]byte(tc.yaml))
		if !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScenario(%q) = %v; want an ErrScenario naming %q", tc.yaml, err, tc.want)
		}
	}
}

// Ramp: viewer k starts at k/ramp, round-robin over the rooms; the hold
// comes after the ramp.
func TestPlan_RampAndRoomAssignment(t *testing.T) {
	s := mustParse(t, "ramp: 4\nduration: 10s\nroom_prefix: r\nrooms:\n - {count: 2, publishers: 1, viewers: 3}\n - {count: 1, publishers: 2, viewers: 1, publisher: {video_tracks: 2, audio: false}}\n")
	p := s.Plan()
	if got := len(p.Viewers); got != 7 {
		t.Fatalf("%d viewers, want 7", got)
	}
	wantRooms := []string{"r-1", "r-2", "r-3", "r-1", "r-2", "r-1", "r-2"}
	for k, v := range p.Viewers {
		if v.Start != time.Duration(k)*250*time.Millisecond || v.Room != wantRooms[k] || v.Leave != 0 || v.Identity != "loadtest-viewer-"+itoa(k) {
			t.Fatalf("viewer %d: %+v, want room %s at %s", k, v, wantRooms[k], time.Duration(k)*250*time.Millisecond)
		}
	}
	if p.Length != 7*250*time.Millisecond+10*time.Second {
		t.Fatalf("length %s", p.Length)
	}
	if len(p.Publishers) != 4 || p.room("r-3").VideoTracks != 4 || p.room("r-3").AudioTracks != 0 || p.room("r-1").AudioTracks != 1 {
		t.Fatalf("publishers %+v rooms %+v", p.Publishers, p.Rooms)
	}
}

// Churn: each slot is a chain of viewers, the next arriving as the last
// leaves; stays average the configured mean; the plan is the same for the
// same seed and differs for another.
func TestPlan_ChurnReplacesViewersAndKeepsTheAudience(t *testing.T) {
	yaml := "ramp: 100\nduration: 600s\nrooms: [{count: 1, publishers: 1, viewers: 20}]\nchurn: {mean_watch: 10s}\nseed: "
	p := mustParse(t, yaml+"1\n").Plan()
	if again := mustParse(t, yaml+"1\n").Plan(); !slices.Equal(p.Viewers, again.Viewers) {
		t.Fatal("the same seed gave another plan")
	}
	if other := mustParse(t, yaml+"2\n").Plan(); slices.Equal(p.Viewers, other.Viewers) {
		t.Fatal("another seed gave the same plan")
	}
	var stays []float64
	for _, v := range p.Viewers {
		if v.Leave != 0 {
			stays = append(stays, (v.Leave - v.Start).Seconds())
		}
	}
	mean := 0.0
	for _, s := range stays {
		mean += s
	}
	mean /= float64(len(stays))
	// ~20 slots x 600 s / 10 s = ~1200 stays: the mean is within 10 %.
	if len(stays) < 1000 || math.Abs(mean-10) > 1 {
		t.Fatalf("%d stays of mean %.2f s, want ~1200 of ~10 s", len(stays), mean)
	}
	// At every moment after the ramp exactly 20 viewers are planned in.
	for _, at := range []time.Duration{time.Second, 100 * time.Second, 599 * time.Second} {
		n := 0
		for _, v := range p.Viewers {
			if v.Start <= at && (v.Leave == 0 || v.Leave > at) {
				n++
			}
		}
		if n != 20 {
			t.Fatalf("%d viewers planned in at %s, want 20", n, at)
		}
	}
}

// Social live: arrivals at the configured rate, audiences ranked by a power
// law, stays of the configured mean.
func TestPlan_SocialLiveIsPowerLawAndPoisson(t *testing.T) {
	p := mustParse(t, "seed: 3\nduration: 1000s\nsocial: {rooms: 20, arrival_rate: 10, mean_watch: 30s, alpha: 1.2}\n").Plan()
	if n := len(p.Viewers); n < 9500 || n > 10500 {
		t.Fatalf("%d arrivals in 1000 s at 10/s", n)
	}
	per := map[string]int{}
	for _, v := range p.Viewers {
		per[v.Room]++
	}
	// Room 1 gets 2^1.2 = 2.3 times room 2's share and 20^1.2 = 36 times
	// room 20's.
	r1, r2, r20 := float64(per["loadtest-1"]), float64(per["loadtest-2"]), float64(per["loadtest-20"])
	if math.Abs(r1/r2-2.3) > 0.3 || r1/r20 < 25 || r1/r20 > 50 {
		t.Fatalf("audiences room1 %v room2 %v room20 %v", r1, r2, r20)
	}
	if len(p.Publishers) != 20 || p.Length != 1000*time.Second {
		t.Fatalf("%d publishers, length %s", len(p.Publishers), p.Length)
	}
}

// Shards are disjoint, cover the plan, and keep its identities, rooms and
// times.
func TestPlan_ShardsPartitionThePlan(t *testing.T) {
	p := mustParse(t, "seed: 5\nramp: 10\nrooms: [{count: 3, publishers: 1, viewers: 7}]\nchurn: {mean_watch: 5s}\n").Plan()
	var viewers []PlannedViewer
	var pubs []PlannedPublisher
	for i := range 3 {
		sh := p.Slice(Shard{Index: i, Count: 3})
		viewers = append(viewers, sh.Viewers...)
		pubs = append(pubs, sh.Publishers...)
		if len(sh.Rooms) != 3 || sh.Length != p.Length {
			t.Fatalf("shard %d lost rooms or length", i)
		}
	}
	slices.SortFunc(viewers, func(a, b PlannedViewer) int { return a.Index - b.Index })
	slices.SortFunc(pubs, func(a, b PlannedPublisher) int { return a.Index - b.Index })
	if !slices.Equal(viewers, p.Viewers) || len(pubs) != len(p.Publishers) {
		t.Fatal("the shards do not add up to the plan")
	}
	for _, bad := range []string{"", "1", "3/3", "-1/2", "a/b", "0/0", "1/2/3"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
	if sh, err := ParseShard("2/5"); err != nil || sh != (Shard{2, 5}) || sh.String() != "2/5" {
		t.Fatalf("ParseShard(2/5) = %v %v", sh, err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func FuzzParseScenario(f *testing.F) {
	files, _ := filepath.Glob("scenarios/*.yaml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("rooms: [{count: 2, viewers: 3}]\nchurn: {mean_watch: 1ms}\n"))
	f.Add([]byte("social: {rooms: 1, arrival_rate: 1e-9}\n"))
	f.Add([]byte("duration: 1ns\nramp: 1e300\n"))
	f.Add([]byte(":\n- [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseScenario(data)
		if err != nil {
			if !errors.Is(err, ErrScenario) {
				t.Fatalf("error without ErrScenario: %v", err)
			}
			return
		}
		// Plan only what is small enough to plan quickly; Validate bounds
		// the rest.
		if plannedSize(s) > 5000 {
			return
		}
		p := s.Plan()
		for _, v := range p.Viewers {
			if v.Start < 0 || v.Start > p.Length || (v.Leave != 0 && (v.Leave <= v.Start || v.Leave >= p.Length)) {
				t.Fatalf("viewer %+v outside the plan of length %s", v, p.Length)
			}
		}
	})
}

// plannedSize estimates the participants a scenario plans (churn aside).
func plannedSize(s Scenario) float64 {
	s = s.withDefaults()
	if s.Social != nil {
		return s.Social.ArrivalRate*time.Duration(s.Duration).Seconds() + float64(s.Social.Rooms)
	}
	n := 0.0
	for _, g := range s.Rooms {
		n += float64(g.Count * (g.Viewers + g.Publishers))
	}
	if s.Churn.MeanWatch > 0 {
		n *= 1 + time.Duration(s.Duration).Seconds()/time.Duration(s.Churn.MeanWatch).Seconds()
	}
	return n
}
