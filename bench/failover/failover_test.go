package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 3 * s}, 2500 * time.Millisecond},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSummarizeSkipsFailedTrials(t *testing.T) {
	s := time.Second
	got := summarize([]trial{{Ready: 7 * s}, {Ready: 9 * s}, {Ready: 30 * s, Err: "timeout"}, {Ready: 6 * s}})
	if got.n != 3 || got.median != 7*s || got.worst != 9*s || got.best != 6*s {
		t.Errorf("summarize = %+v, want n 3, median 7s, worst 9s, best 6s", got)
	}
}

func TestEven(t *testing.T) {
	for _, tc := range []struct {
		place          map[string]int
		nodes, replica int
		want           bool
	}{
		{map[string]int{"node1": 1, "node2": 1, "node3": 1}, 3, 3, true},
		{map[string]int{"node1": 2, "node3": 1}, 3, 3, false},
		{map[string]int{"node1": 2, "node2": 0, "node3": 1}, 3, 3, false},
		{map[string]int{"node1": 2}, 3, 2, true}, // fewer replicas than nodes
	} {
		if got := even(tc.place, tc.nodes, tc.replica); got != tc.want {
			t.Errorf("even(%v, %d, %d) = %v, want %v", tc.place, tc.nodes, tc.replica, got, tc.want)
		}
	}
}

func TestPullLines(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "dockerd.log")
	log := `time="x" level=error msg="pulling image failed" error="Get https://registry-1.docker.io/v2/: dial tcp: lookup"
time="x" level=info msg="starting signal loop"
time=x level=INFO msg="replica state" message="pulling: ruche-bench-hello:latest"
time=x level=INFO msg="heartbeat sent"
`
	if err := os.WriteFile(src, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copy.log")
	hits, err := copyScan(src, dst, "node1-dockerd.log")
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 {
		t.Fatalf("got %d pull lines, want 2: %q", len(hits), hits)
	}
	copied, err := os.ReadFile(dst)
	if err != nil || string(copied) != log {
		t.Errorf("copy differs from the log (err %v)", err)
	}
	if !slices.ContainsFunc(hits, func(h string) bool { return h[:18] == "node1-dockerd.log:" }) {
		t.Errorf("hits do not name their file: %q", hits)
	}
}
