package proxy

import (
	"math"
	"math/rand/v2"
	"testing"
)

func testUpstreams(inflight ...int64) []*upstream {
	ups := make([]*upstream, len(inflight))
	for i, n := range inflight {
		ups[i] = newUpstream(Upstream{ID: string(rune('a' + i)), Addr: "x"}, "")
		ups[i].inflight.Store(n)
	}
	return ups
}

// TestPickStatistics checks the power of two choices against its exact
// probabilities: with n candidates, the k-th least loaded (0-based,
// distinct loads) is picked with probability 2(n-1-k)/(n(n-1)).
func TestPickStatistics(t *testing.T) {
	tests := []struct {
		name     string
		inflight []int64
		want     []float64
	}{
		{"two", []int64{3, 1}, []float64{0, 1}},
		{"three", []int64{0, 5, 10}, []float64{2.0 / 3, 1.0 / 3, 0}},
		{"four", []int64{7, 1, 4, 9}, []float64{1.0 / 6, 3.0 / 6, 2.0 / 6, 0}},
		{"equal", []int64{2, 2, 2, 2}, []float64{.25, .25, .25, .25}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			ups := testUpstreams(tt.inflight...)
			const draws = 60000
			counts := map[*upstream]int{}
			for range draws {
				counts[pick(ups, 0, &tried{}, rng.IntN)]++
			}
			for i, u := range ups {
				got := float64(counts[u]) / draws
				if math.Abs(got-tt.want[i]) > 0.01 {
					t.Errorf("upstream %d (in flight %d): picked %.3f of the time, want %.3f", i, tt.inflight[i], got, tt.want[i])
				}
			}
		})
	}
}

func TestPickSkips(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	now := int64(1000)
	tests := []struct {
		name  string
		setup func(ups []*upstream, tr *tried)
		want  []int // acceptable picks; nil = none
	}{
		{"ejected", func(ups []*upstream, _ *tried) {
			ups[0].ejectedUntil.Store(now + 1)
			ups[1].ejectedUntil.Store(now + 1)
		}, []int{2}},
		{"ejection over", func(ups []*upstream, _ *tried) {
			ups[0].ejectedUntil.Store(now)
			ups[1].down.Store(true)
			ups[2].down.Store(true)
		}, []int{0}},
		{"down", func(ups []*upstream, _ *tried) { ups[1].down.Store(true); ups[2].down.Store(true) }, []int{0}},
		{"tried", func(ups []*upstream, tr *tried) { tr.add(ups[0]); tr.add(ups[2]) }, []int{1}},
		{"all tried: any available", func(ups []*upstream, tr *tried) {
			tr.add(ups[0])
			tr.add(ups[1])
			tr.add(ups[2])
			ups[1].down.Store(true)
		}, []int{0, 2}},
		{"all down: panic mode", func(ups []*upstream, _ *tried) {
			for _, u := range ups {
				u.down.Store(true)
			}
			ups[1].ejectedUntil.Store(now + 1)
		}, []int{0, 2}},
		{"none", func(ups []*upstream, _ *tried) {
			for _, u := range ups {
				u.ejectedUntil.Store(now + 1)
			}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ups := testUpstreams(0, 0, 0)
			var tr tried
			tt.setup(ups, &tr)
			for range 100 {
				got := pick(ups, now, &tr, rng.IntN)
				if tt.want == nil {
					if got != nil {
						t.Fatalf("got %s, want none", got.id)
					}
					continue
				}
				ok := false
				for _, i := range tt.want {
					ok = ok || got == ups[i]
				}
				if !ok {
					t.Fatalf("got %v, want one of %v", got, tt.want)
				}
			}
		})
	}
	if got := pick(nil, now, &tried{}, rng.IntN); got != nil {
		t.Errorf("pick of no upstream: got %v", got)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	ups := testUpstreams(1, 2, 3, 4)
	allocs := testing.AllocsPerRun(100, func() { pick(ups, 0, &tried{}, rand.IntN) })
	if allocs != 0 {
		t.Errorf("pick allocates %v times, want 0", allocs)
	}
}
