package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Goals of issue 5.
const (
	goalFailover = 3 * time.Second
	goalRSSKB    = 150 * 1024
)

type rss struct {
	Node string
	KB   int64
}

type report struct {
	Trials, Services int
	Replicas         int // of each idle service (0: the managers ran no agent)
	Timing           string
	Runs             []trial
	RSS              []rss
}

func stats(ds []time.Duration) (median, worst time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0, 0
	}
	median = s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return median, s[len(s)-1]
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func (r *report) markdown() string {
	var b strings.Builder
	var writes, leaders []time.Duration
	for _, t := range r.Runs {
		writes, leaders = append(writes, t.Write), append(leaders, t.Leader)
	}
	wm, ww := stats(writes)
	lm, lw := stats(leaders)
	timing := r.Timing
	if timing == "" {
		timing = "etcd defaults (heartbeat 100 ms, election 1000 ms)"
	}
	cmd, replicas := "`ruche server`", "no replicas: no agent in this run"
	if r.Replicas > 0 {
		cmd, replicas = "`ruche up`, an agent each", fmt.Sprintf("%d replica(s) each, all ready", r.Replicas)
	}
	fmt.Fprintf(&b, "Three managers (%s, 3-node testbed), raft timing: %s; %d trials.\n\n", cmd, timing, len(r.Runs))
	if len(r.Runs) > 0 {
		fmt.Fprintf(&b, "| measure | median | worst | goal | verdict |\n|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| SIGKILL of the leader → next acknowledged write | %.2f s | %.2f s | ≤ 3 s worst | %s |\n",
			wm.Seconds(), ww.Seconds(), verdict(ww <= goalFailover))
		fmt.Fprintf(&b, "| SIGKILL of the leader → status names a new leader (controllers run) | %.2f s | %.2f s | ≤ 3 s worst | %s |\n\n",
			lm.Seconds(), lw.Seconds(), verdict(lw <= goalFailover))
	}
	fmt.Fprintf(&b, "Idle RSS with %d services deployed (%s):\n\n| manager | VmRSS | goal | verdict |\n|---|---|---|---|\n", r.Services, replicas)
	for _, x := range r.RSS {
		fmt.Fprintf(&b, "| %s | %.1f MiB | ≤ 150 MB | %s |\n", x.Node, float64(x.KB)/1024, verdict(x.KB <= goalRSSKB))
	}
	if len(r.Runs) > 0 {
		b.WriteString("\nTrials (killed manager, write, new leader):\n\n")
	}
	for i, t := range r.Runs {
		fmt.Fprintf(&b, "%d. %s: write %.2f s, leader %s after %.2f s\n", i+1, t.Killed, t.Write.Seconds(), t.NewLeader, t.Leader.Seconds())
	}
	return b.String()
}

func (r *report) write(dir string) error {
	var tsv strings.Builder
	tsv.WriteString("trial\tkilled\twrite_s\tleader_s\tnew_leader\n")
	for i, t := range r.Runs {
		fmt.Fprintf(&tsv, "%d\t%s\t%.3f\t%.3f\t%s\n", i+1, t.Killed, t.Write.Seconds(), t.Leader.Seconds(), t.NewLeader)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.tsv"), []byte(tsv.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.markdown()), 0o644)
}
