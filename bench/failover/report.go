package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/internal/testbed"
)

// goal is issue 4's: a killed node's replicas ready elsewhere within 10 s,
// worst case.
const goal = 10 * time.Second

// report is one run: the machine, the trials of each system, and what
// went wrong.
type report struct {
	Started, Finished time.Time
	Version           string
	Replicas, Trials  int
	ImageID           string

	Kernel, CPU, Memory, Docker, OS string
	LoadStart, LoadEnd              string

	Ruche, Swarm []trial
	SwarmListen  []string
	Pulls        []string
	Errors       []string
}

func (r *report) machine(ctx context.Context) {
	out := func(name string, args ...string) string {
		b, _ := exec.CommandContext(ctx, name, args...).Output()
		return strings.TrimSpace(string(b))
	}
	r.Kernel = "Linux " + out("uname", "-r")
	r.CPU = fmt.Sprintf("%d × %s", runtime.NumCPU(), procField("/proc/cpuinfo", "model name"))
	r.Memory = procField("/proc/meminfo", "MemTotal")
	r.OS = strings.Trim(procField("/etc/os-release", "PRETTY_NAME="), `"`)
	r.LoadStart = loadavg()
}

func (r *report) loadEnd() { r.LoadEnd = loadavg() }

func (r *report) dockerVersion(ctx context.Context, tb *testbed.Testbed) {
	cli, err := tb.Nodes()[0].Docker()
	if err != nil {
		return
	}
	defer cli.Close()
	if v, err := cli.ServerVersion(ctx); err == nil {
		r.Docker = v.Version
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// procField is the value after key in a "key: value" or "KEY=value" file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, key) {
			v := strings.TrimPrefix(l, key)
			return strings.TrimSpace(strings.TrimLeft(v, " \t:"))
		}
	}
	return "?"
}

// stats are the figures of a system's successful trials.
type stats struct {
	n                   int
	median, worst, best time.Duration
	down, placed, start time.Duration // medians of the parts
}

func summarize(ts []trial) stats {
	var s stats
	var ready, down, placed, start []time.Duration
	for _, t := range ts {
		if !t.ok() {
			continue
		}
		ready = append(ready, t.Ready)
		down = append(down, t.Down)
		placed = append(placed, t.Placed)
		start = append(start, t.Started)
	}
	s.n = len(ready)
	if s.n == 0 {
		return s
	}
	s.median, s.down, s.placed, s.start = median(ready), median(down), median(placed), median(start)
	s.worst, s.best = slices.Max(ready), slices.Min(ready)
	return s
}

// median of d (the mean of the two middle values for an even count).
func median(d []time.Duration) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	n := len(d)
	if n%2 == 1 {
		return d[n/2]
	}
	return (d[n/2-1] + d[n/2]) / 2
}

func secs(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func (r *report) verdict(s stats) string {
	switch {
	case s.n == 0:
		return "not measured"
	case s.n < 10:
		return fmt.Sprintf("not established (%d trials, want ≥ 10)", s.n)
	case s.worst <= goal:
		return "met"
	default:
		return "not met"
	}
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	took := r.Finished.Sub(r.Started).Round(time.Second)
	p("### Run of %s (`bench/failover/run.sh`, %s)\n\n", r.Started.Format("2006-01-02 15:04 MST"), took)
	p("- ruche: version %s\n", r.Version)
	p("- CPU: %s; memory: %s; kernel: %s; OS: %s\n", r.CPU, r.Memory, r.Kernel, r.OS)
	p("- Docker engine in every node: %s; Go: %s\n", r.Docker, runtime.Version())
	p("- testbed: 3 nodes (network namespaces, a dockerd each), node1 the manager (ruche up / swarm manager), node2 and node3 agents / workers; every node runs replicas\n")
	p("- service: %d replicas of %s (%s), no port, healthcheck `[\"CMD\", \"/hello\", \"health\"]` every 1 s (timeout 2 s, 3 retries), the same for both\n", r.Replicas, image, short(r.ImageID))
	p("- ruche's defaults: heartbeat 1 s, node down after 5 s; Swarm's defaults: %s\n", swarmDefaults)
	p("- a trial: PowerOff of node2 or node3 (whichever holds replicas, in turn; SIGKILL of its agent, dockerd, containerd, shims and containers), then the API polled every %s until the full count is ready on the other nodes; then PowerOn, the node rejoins, the service settles (no surplus container), and the replicas are spread again by a rolling update when a node holds none\n", pollEvery)
	if len(r.SwarmListen) > 0 {
		p("- dockerd listening sockets with the swarm up: %s\n", strings.Join(r.SwarmListen, "; "))
	}
	if len(r.Pulls) == 0 {
		p("- image pulls: none (checked in every dockerd's and ruche's log; Swarm got the image by ID, without a registry query)\n")
	} else {
		p("- image pulls: **ATTEMPTED** (%d log lines, below)\n", len(r.Pulls))
	}
	p("- load average (1, 5, 15 min): %s at the start, %s at the end\n\n", r.LoadStart, r.LoadEnd)

	p("#### Node killed → its replicas ready elsewhere (seconds from the kill)\n\n")
	p("| system | trials | median | worst | best | median: node listed down | median: last replacement created | median: its container started | goal: worst ≤ 10 s |\n")
	p("|---|---|---|---|---|---|---|---|---|\n")
	for _, sys := range []struct {
		name string
		ts   []trial
	}{{"ruche", r.Ruche}, {"Docker Swarm", r.Swarm}} {
		s := summarize(sys.ts)
		p("| %s | %d of %d | %s | %s | %s | %s | %s | %s | %s |\n", sys.name, s.n, r.Trials,
			secs(s.median), secs(s.worst), secs(s.best), secs(s.down), secs(s.placed), secs(s.start), r.verdict(s))
	}
	p("\n#### Each trial\n\n")
	p("Seconds from the start of PowerOff (the poll runs from then on; PowerOff SIGKILLs the agent first, then dockerd, containerd, shims and containers, which takes the time shown); \"back\" from PowerOn (dockerd started again, and ruche's agent) to the node listed ready, \"settled\" from then to the full count with no surplus container.\n\n")
	p("| system | # | node killed | replicas it held | PowerOff took | node listed down | last replacement created | its container started | **all ready** | back | settled | error |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range append(slices.Clone(r.Ruche), r.Swarm...) {
		p("| %s | %d | %s | %d | %s | %s | %s | %s | **%s** | %s | %s | %s |\n", t.System, t.N, t.Victim, t.Held,
			secs(t.PowerOff), secs(t.Down), secs(t.Placed), secs(t.Started), secs(t.Ready), secs(t.Rejoin), secs(t.Settle), t.Err)
	}
	if len(r.Pulls) > 0 {
		p("\n#### Pull attempts in the logs\n\n")
		for _, l := range r.Pulls {
			p("- `%s`\n", l)
		}
	}
	if len(r.Errors) > 0 {
		p("\n#### Errors\n\n")
		for _, e := range r.Errors {
			p("- %s\n", e)
		}
	}
	return b.String()
}

func short(id string) string {
	if len(id) > 19 {
		return id[:19]
	}
	return id
}

// write saves results.tsv (one row per trial, seconds) and report.md.
func (r *report) write(dir string) error {
	var b strings.Builder
	b.WriteString("system\ttrial\tvictim\theld\tpoweroff_s\tdown_s\tplaced_s\tstarted_s\tready_s\trejoin_s\tsettle_s\terror\n")
	f := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
	for _, t := range append(slices.Clone(r.Ruche), r.Swarm...) {
		fmt.Fprintf(&b, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.System, t.N, t.Victim, t.Held,
			f(t.PowerOff), f(t.Down), f(t.Placed), f(t.Started), f(t.Ready), f(t.Rejoin), f(t.Settle), t.Err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.tsv"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.markdown()), 0o644)
}
