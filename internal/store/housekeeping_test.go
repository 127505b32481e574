package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeMaint is a one-member store whose sizes the test sets.
type fakeMaint struct {
	mu        sync.Mutex
	m         MemberUsage
	nospace   bool
	compactTo int64 // InUse after a compaction
	calls     []string
}

func (f *fakeMaint) Usage(ctx context.Context) (Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := Usage{Members: []MemberUsage{f.m}, Revision: 42}
	if f.nospace {
		u.Alarms = []Alarm{{Member: 1, Type: "NOSPACE"}}
	}
	return u, nil
}

func (f *fakeMaint) Defragment(ctx context.Context, ep string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "defrag")
	f.m.DBSize = f.m.InUse
	return nil
}

func (f *fakeMaint) Compact(ctx context.Context, rev int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "compact")
	if f.compactTo > 0 {
		f.m.InUse = f.compactTo
	}
	return nil
}

func (f *fakeMaint) DisarmNoSpace(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "disarm")
	f.nospace = false
	return nil
}

func (f *fakeMaint) got() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}

const mib = 1 << 20

func TestHousekeeper(t *testing.T) {
	tests := []struct {
		name      string
		m         MemberUsage
		nospace   bool
		compactTo int64
		after     time.Duration
		want      string
	}{
		{"routine waits for its interval", MemberUsage{DBSize: 400 * mib, InUse: 100 * mib, Quota: 2048 * mib}, false, 0, 23 * time.Hour, ""},
		{"routine after a day", MemberUsage{DBSize: 400 * mib, InUse: 100 * mib, Quota: 2048 * mib}, false, 0, 25 * time.Hour, "defrag"},
		{"routine skips a mostly used file", MemberUsage{DBSize: 400 * mib, InUse: 300 * mib, Quota: 2048 * mib}, false, 0, 49 * time.Hour, ""},
		{"routine skips a small gain", MemberUsage{DBSize: 60 * mib, InUse: 10 * mib, Quota: 2048 * mib}, false, 0, 49 * time.Hour, ""},
		{"near quota at once", MemberUsage{DBSize: 1700 * mib, InUse: 1400 * mib, Quota: 2048 * mib}, false, 0, time.Minute, "defrag"},
		{"near quota with nothing to reclaim", MemberUsage{DBSize: 1700 * mib, InUse: 1650 * mib, Quota: 2048 * mib}, false, 0, time.Hour, ""},
		{"nospace recovered", MemberUsage{DBSize: 2048 * mib, InUse: 2000 * mib, Quota: 2048 * mib}, true, 500 * mib, time.Minute, "compact,defrag,disarm"},
		{"nospace still full", MemberUsage{DBSize: 2048 * mib, InUse: 2000 * mib, Quota: 2048 * mib}, true, 1900 * mib, time.Minute, "compact,defrag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeMaint{m: tc.m, nospace: tc.nospace, compactTo: tc.compactTo}
				reg := prometheus.NewRegistry()
				h := NewHousekeeper(HousekeeperConfig{}, f, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error)
				go func() { done <- h.Run(ctx) }()
				time.Sleep(tc.after)
				synctest.Wait()
				cancel()
				<-done
				// A defragmentation shrinks the file: later checks do nothing more.
				if got := f.got(); !strings.HasPrefix(got, tc.want) || (tc.want == "" && got != "") {
					t.Fatalf("got calls %q, want %q", got, tc.want)
				}
				if got := f.got(); tc.want != "" && got != tc.want {
					t.Fatalf("got calls %q, want exactly %q", got, tc.want)
				}
				if n := len(gather(t, reg)); strings.Contains(tc.want, "defrag") != (n > 0) {
					t.Errorf("defragmentation counter has %d series", n)
				}
			})
		})
	}
}

func TestUsageCollector(t *testing.T) {
	f := &fakeMaint{m: MemberUsage{ID: 0xab, DBSize: 300, InUse: 200, Quota: 1000}, nospace: true}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewUsageCollector(f))
	got := gather(t, reg)
	want := map[string]float64{
		`ruche_store_db_size_bytes{member="ab"}`:        300,
		`ruche_store_db_size_in_use_bytes{member="ab"}`: 200,
		`ruche_store_quota_bytes{member="ab"}`:          1000,
		`ruche_store_alarm{alarm="NOSPACE",member="1"}`: 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// gather flattens a registry's gauges and counters to name{labels} -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}
