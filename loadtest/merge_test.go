package loadtest

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// split returns the report's viewers in two shard reports, as two
// processes would have written them (JSON round trip included).
func split(t *testing.T, r *Report) (*Report, *Report) {
	t.Helper()
	halves := [2]*Report{}
	for i := range halves {
		h := *r
		h.Shards = []string{Shard{Index: i, Count: 2}.String()}
		h.PerViewer = nil
		for k, v := range r.PerViewer {
			if k%2 == i {
				h.PerViewer = append(h.PerViewer, v)
			}
		}
		h.LatencyBuckets = nil
		l := latencyFromBuckets(r.LatencyBuckets)
		half := &Latency{}
		for b, c := range l.counts {
			if i == 0 {
				half.counts[b] = c / 2
			} else {
				half.counts[b] = c - c/2
			}
			half.total += half.counts[b]
		}
		h.LatencyBuckets = half.buckets()
		h.aggregate()
		var buf bytes.Buffer
		if err := h.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := ReadReport(&buf)
		if err != nil {
			t.Fatal(err)
		}
		halves[i] = back
	}
	return halves[0], halves[1]
}

func TestMerge_TwoShardsGiveTheFiguresOfOne(t *testing.T) {
	whole := sampleReport()
	a, b := split(t, whole)
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Measures, whole.Measures) {
		t.Fatalf("measures\n%+v\nwant\n%+v", m.Measures, whole.Measures)
	}
	if m.Received != whole.Received || m.Viewers.Planned != whole.Viewers.Planned || m.Viewers.Connected != whole.Viewers.Connected ||
		m.Viewers.Failed != whole.Viewers.Failed || !reflect.DeepEqual(m.FailedJoins, whole.FailedJoins) {
		t.Fatalf("totals %+v %+v %v; want %+v %+v %v", m.Received, m.Viewers, m.FailedJoins, whole.Received, whole.Viewers, whole.FailedJoins)
	}
	if !reflect.DeepEqual(m.LatencyCDF, whole.LatencyCDF) || len(m.PerViewer) != len(whole.PerViewer) {
		t.Fatal("latency or records differ")
	}
	if strings.Join(m.Shards, ",") != "0/2,1/2" {
		t.Fatalf("shards %v", m.Shards)
	}
	// Timelines add up: twice the audience at every sample.
	if m.Timeline[5].Connected != 2*whole.Timeline[5].Connected {
		t.Fatalf("timeline %+v", m.Timeline[5])
	}
}

func TestMerge_RefusesWhatDoesNotBelongTogether(t *testing.T) {
	a, b := split(t, sampleReport())
	if _, err := Merge(a, a); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("the same shard twice: %v", err)
	}
	b.Scenario = "another"
	if _, err := Merge(a, b); err == nil || !strings.Contains(err.Error(), "scenario") {
		t.Fatalf("two scenarios: %v", err)
	}
	if _, err := Merge(); err == nil {
		t.Fatal("merged nothing")
	}
	if _, err := ReadReport(strings.NewReader(`{"schema":"something/else"}`)); err == nil {
		t.Fatal("read a report of another schema")
	}
}

// Reports come from files (merge): reading and merging any bytes returns
// a report or an error, never a panic.
func FuzzReadReport(f *testing.F) {
	var buf bytes.Buffer
	_ = sampleReport().WriteJSON(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte(`{"schema":"halo-loadtest/report/v1","latency_buckets":[[18446744073709551615,1]],"per_viewer":[{"outcome":"connected","packets":1,"lost_raw":5}]}`))
	f.Add([]byte(`{"schema":"halo-loadtest/report/v1","timeline":[{"t_ms":-1}],"shards":["0/2","0/2"]}`))
	f.Add([]byte(`[]`))
	// Extremes JSON can hold: plots must not index out of range.
	f.Add([]byte(`{"schema":"halo-loadtest/report/v1","per_viewer":[{"outcome":"connected","join_ms":1e308},{"outcome":"connected","join_ms":-1e308}]}`))
	f.Add([]byte(`{"schema":"halo-loadtest/report/v1","timeline":[{"t_ms":1e308,"connected":1},{"t_ms":-1e308,"kbps":-5}]}`))
	f.Add([]byte(`{"schema":"halo-loadtest/report/v1","per_viewer":[{"outcome":"connected","loss_percent":1e308,"freeze_ms":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadReport(bytes.NewReader(data))
		if err != nil {
			return
		}
		m, err := Merge(r)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := m.WriteJSON(&out); err != nil {
			t.Fatalf("a merged report does not encode: %v", err)
		}
		if err := m.WriteHTML(&out); err != nil {
			t.Fatalf("a merged report does not render: %v", err)
		}
	})
}

func FuzzParseShard(f *testing.F) {
	for _, s := range []string{"0/1", "3/4", "4/4", "-1/2", "1/0", " 2/3 ", "a/b", "9999/10000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sh, err := ParseShard(s)
		if err != nil {
			return
		}
		if sh.Index < 0 || sh.Index >= sh.Count || sh.Count > 10_000 {
			t.Fatalf("ParseShard(%q) = %+v", s, sh)
		}
		if back, err := ParseShard(sh.String()); sh.Count > 1 && (err != nil || back != sh) {
			t.Fatalf("%+v does not round-trip: %+v %v", sh, back, err)
		}
	})
}
