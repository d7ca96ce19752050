package id

import (
	"regexp"
	"sync"
	"testing"
)

func TestNew_IsPrefixAndThirtyTwoHexDigits(t *testing.T) {
	for _, prefix := range []string{"", "p_", "t_", "whip-"} {
		got := New(prefix)
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `[0-9a-f]{32}$`).MatchString(got) {
			t.Errorf("New(%q) = %q, want the prefix then 32 hex digits", prefix, got)
		}
	}
}

func TestNew_DoesNotRepeatAcrossGoroutines(t *testing.T) {
	const goroutines, each = 8, 2000
	var mu sync.Mutex
	seen := make(map[string]bool, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			local := make([]string, each)
			for i := range local {
				local[i] = New("p_")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, s := range local {
				if seen[s] {
					t.Errorf("New returned %q twice", s)
				}
				seen[s] = true
			}
		})
	}
	wg.Wait()
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct ids, want %d", len(seen), goroutines*each)
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = New("p_")
	}
}
