package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// TestReportGolden renders testdata/results.tsv (a fixture) and compares
// it with testdata/report.golden.md; -update rewrites the golden file.
func TestReportGolden(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "results.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := parseReport(f)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	rep.render(&got)
	golden := filepath.Join("testdata", "report.golden.md")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("report differs from %s (run with -update after checking):\n%s", golden, got.String())
	}
}

func goalsOf(t *testing.T, lines ...string) map[string]string {
	t.Helper()
	rep, err := parseReport(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range rep.render(&bytes.Buffer{}) {
		out[g.text] = g.verdict
	}
	return out
}

func TestReportVerdicts(t *testing.T) {
	const (
		nginxGoal   = "ruche ≥ 0.9× nginx's requests/s"
		caddyGoal   = "ruche ahead of Caddy"
		halfGoal    = "p99 added by ruche at half its peak ≤ 1 ms"
		sustainGoal = "60 s at 10000 req/s through ruche with zero errors"
		rollGoal    = "300 req/s mixed GET/POST for 60 s, rolling update and scale 2→1→2: 0 failed requests"
		killGoal    = "a replica killed with SIGKILL: 0 failed GETs"
		allocsGoal  = "proxy hot path: ≤ 10 allocations per request"
		bufGoal     = "proxy hot path: no per-request copy buffer"
	)
	sustain := func(fields string) string { return "load\tsustain/ruche\t" + fields }
	tests := []struct {
		name  string
		lines []string
		goal  string
		want  string
	}{
		{"0.9× nginx exactly", []string{"wrk\tpeak/ruche/1\trps=900", "wrk\tpeak/nginx/1\trps=1000"}, nginxGoal, "met"},
		{"below 0.9× nginx", []string{"wrk\tpeak/ruche/1\trps=899", "wrk\tpeak/nginx/1\trps=1000"}, nginxGoal, "not met"},
		{"median of rounds", []string{"wrk\tpeak/ruche/1\trps=500", "wrk\tpeak/ruche/2\trps=950", "wrk\tpeak/ruche/3\trps=960",
			"wrk\tpeak/nginx/1\trps=1000"}, nginxGoal, "met"},
		{"nginx missing", []string{"wrk\tpeak/ruche/1\trps=900"}, nginxGoal, "not met (not measured)"},
		{"tied with Caddy", []string{"wrk\tpeak/ruche/1\trps=900", "wrk\tpeak/caddy/1\trps=900"}, caddyGoal, "not met"},
		{"ahead of Caddy", []string{"wrk\tpeak/ruche/1\trps=901", "wrk\tpeak/caddy/1\trps=900"}, caddyGoal, "met"},
		{"1 ms added", []string{"load\thalf/ruche/ruche\trate=5\tp99=2.5\tfailed=0", "load\thalf/ruche/direct\trate=5\tp99=1.5\tfailed=0"}, halfGoal, "met"},
		{"1.01 ms added", []string{"load\thalf/ruche/ruche\trate=5\tp99=2.51\tfailed=0", "load\thalf/ruche/direct\trate=5\tp99=1.5\tfailed=0"}, halfGoal, "not met"},
		{"fast but failing", []string{"load\thalf/ruche/ruche\trate=5\tp99=1\tfailed=3", "load\thalf/ruche/direct\trate=5\tp99=1\tfailed=0"}, halfGoal, "not met"},
		{"sustained, no error", []string{sustain("rate=10000\tduration_s=60\tsent=600000\tok=600000\tfailed=0\tachieved=9999.5")}, sustainGoal, "met"},
		{"sustained, one error", []string{sustain("rate=10000\tduration_s=60\tsent=600000\tok=599999\tfailed=1\tachieved=9999.5")}, sustainGoal, "not met"},
		{"rate not held", []string{sustain("rate=10000\tduration_s=60\tsent=600000\tok=600000\tfailed=0\tachieved=9000")}, sustainGoal, "not met (the rate was not held)"},
		{"too short a run", []string{sustain("rate=10000\tduration_s=10\tsent=100000\tok=100000\tfailed=0\tachieved=10000")}, sustainGoal, "not met (run at 10000/s for 10 s, shorter than the goal)"},
		{"rollout clean", []string{"action\trel/ruche-roll\tname=u\tstart=1\tend=2\trc=0", "load\trel/ruche-roll\tsent=10\tfailed=0\tstart=0"}, rollGoal, "met"},
		{"rollout with a failure", []string{"action\trel/ruche-roll\tname=u\tstart=1\tend=2\trc=0", "load\trel/ruche-roll\tsent=10\tfailed=1\tstart=0"}, rollGoal, "not met"},
		{"rollout action failed", []string{"action\trel/ruche-roll\tname=u\tstart=1\tend=2\trc=1", "load\trel/ruche-roll\tsent=10\tfailed=0\tstart=0"}, rollGoal, "not met (an action failed, see the timeline)"},
		{"kill clean", []string{"action\trel/ruche-kill\tname=k\tstart=1\tend=2\trc=0", "load\trel/ruche-kill\tsent=10\tfailed=0\tstart=0"}, killGoal, "met"},
		{"kill without a kill", []string{"load\trel/ruche-kill\tsent=10\tfailed=0\tstart=0"}, killGoal, "not met"},
		{"10 allocs", []string{"gobench\tBenchmarkProxyHotPath\tb_op=700\tallocs_op=10"}, allocsGoal, "met"},
		{"11 allocs", []string{"gobench\tBenchmarkProxyHotPath\tb_op=700\tallocs_op=11"}, allocsGoal, "not met"},
		{"a copy buffer", []string{"gobench\tBenchmarkProxyHotPath\tb_op=33500\tallocs_op=8"}, bufGoal, "not met"},
		{"no copy buffer", []string{"gobench\tBenchmarkProxyHotPath\tb_op=700\tallocs_op=8"}, bufGoal, "met"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := goalsOf(t, tt.lines...)[tt.goal]
			if !ok {
				t.Fatalf("no goal %q in the report", tt.goal)
			}
			if got != tt.want {
				t.Errorf("verdict %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPhases(t *testing.T) {
	actions := []*result{
		newResult("action", "rel/x").set("name", "update").set("start", "10").set("end", "20"),
		newResult("action", "rel/x").set("name", "scale").set("start", "25").set("end", "30"),
	}
	var errs []*result
	for _, at := range []string{"5", "12", "21", "26", "40"} {
		errs = append(errs, newResult("error", "rel/x").set("t", at))
	}
	got := phases(actions, errs)
	want := map[string]int{"before any action": 1, "after update began": 2, "after scale began": 2}
	if len(got) != len(want) {
		t.Fatalf("phases = %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("phases = %v, want %v", got, want)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	r := newResult("load", "rel/x").set("rate", 300.0).set("p99", 1500*1000).set("errors", "read: EOF=2;status 502=1")
	back, err := parseResult(r.String())
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != r.String() {
		t.Errorf("round trip: %q, want %q", back.String(), r.String())
	}
	if got := back.counts("errors"); got["read: EOF"] != 2 || got["status 502"] != 1 {
		t.Errorf("counts = %v", got)
	}
	for _, bad := range []string{"", "load", "load\tx\tnovalue"} {
		if _, err := parseResult(bad); err == nil {
			t.Errorf("parseResult(%q) accepted", bad)
		}
	}
}
