package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Goals of issue 3.
const (
	minRatioToNginx   = 0.9
	maxAddedP99Ms     = 1.0
	sustainRate       = 10000
	sustainSeconds    = 60
	maxAllocsPerReq   = 10
	copyBufferFloorB  = 4096 // smallest plausible per-request copy buffer; io.Copy's is 32 KiB
	achievedTolerance = 0.99 // a sustained run must complete this share of the rate
)

// The labels run.sh gives its result lines.
const (
	targetDirect = "direct"
	targetRuche  = "ruche"
	targetNginx  = "nginx"
	targetCaddy  = "caddy"
	hotPathBench = "BenchmarkProxyHotPath"
)

var targetNames = map[string]string{
	targetDirect: "backend direct (no proxy; the ceiling)",
	targetRuche:  "ruche ingress",
	targetNginx:  "nginx",
	"haproxy":    "HAProxy",
	targetCaddy:  "Caddy",
	"ruche-roll": "ruche: rolling update, then scale 2→1→2",
	"ruche-kill": "ruche: SIGKILL of a replica (GET only)",
	"swarm-roll": "Swarm routing mesh: `docker service update`, then scale 2→1→2",
	"swarm-kill": "Swarm routing mesh: SIGKILL of a task's container (GET only)",
}

func name(label string) string {
	if n, ok := targetNames[label]; ok {
		return n
	}
	return label
}

// report is everything results.tsv holds, grouped by what run.sh measured.
type report struct {
	peak     map[string][]*result // wrk runs by target: "peak/<target>/<round>"
	peakOrd  []string
	logcost  map[string][]*result          // wrk runs of the backend alone: "logcost/<log|nolog>/<round>"
	half     map[string]map[string]*result // "half/<proxy>/<target>": proxy -> target -> load
	halfOrd  []string
	same     map[string]map[string]*result // "same/<proxy>/<target>": every proxy at ruche's half-peak rate
	sameOrd  []string
	sustain  map[string]*result // "sustain/<target>"
	sustOrd  []string
	tls      []*result          // "h2/<target>", "tls1/<target>": h2load over HTTPS
	rel      map[string]*result // "rel/<scenario>"
	relOrd   []string
	actions  map[string][]*result // "rel/<scenario>"
	errors   map[string][]*result // failed requests by load label
	gobench  []*result
	cpu      []*result // "cpu" lines: the machine's CPUs during each phase
	failures []*result // "failed" lines: what could not be measured
}

func parseReport(r io.Reader) (*report, error) {
	rep := &report{
		peak: map[string][]*result{}, logcost: map[string][]*result{}, half: map[string]map[string]*result{}, same: map[string]map[string]*result{}, sustain: map[string]*result{},
		rel: map[string]*result{}, actions: map[string][]*result{}, errors: map[string][]*result{},
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		res, err := parseResult(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		parts := strings.Split(res.label, "/")
		switch {
		case res.kind == "failed":
			rep.failures = append(rep.failures, res)
		case res.kind == "error":
			rep.errors[res.label] = append(rep.errors[res.label], res)
		case res.kind == "gobench":
			rep.gobench = append(rep.gobench, res)
		case res.kind == "cpu":
			rep.cpu = append(rep.cpu, res)
		case res.kind == "wrk" && parts[0] == "peak" && len(parts) == 3:
			if _, ok := rep.peak[parts[1]]; !ok {
				rep.peakOrd = append(rep.peakOrd, parts[1])
			}
			rep.peak[parts[1]] = append(rep.peak[parts[1]], res)
		case res.kind == "wrk" && parts[0] == "logcost" && len(parts) == 3:
			rep.logcost[parts[1]] = append(rep.logcost[parts[1]], res)
		case res.kind == "load" && parts[0] == "half" && len(parts) == 3:
			addPair(rep.half, &rep.halfOrd, parts[1], parts[2], res)
		case res.kind == "load" && parts[0] == "same" && len(parts) == 3:
			addPair(rep.same, &rep.sameOrd, parts[1], parts[2], res)
		case res.kind == "load" && parts[0] == "sustain" && len(parts) == 2:
			rep.sustain[parts[1]] = res
			rep.sustOrd = append(rep.sustOrd, parts[1])
		case res.kind == "h2load" && (parts[0] == "h2" || parts[0] == "tls1") && len(parts) == 2:
			rep.tls = append(rep.tls, res)
		case res.kind == "load" && parts[0] == "rel" && len(parts) == 2:
			rep.rel[parts[1]] = res
			rep.relOrd = append(rep.relOrd, parts[1])
		case res.kind == "action" && parts[0] == "rel" && len(parts) == 2:
			rep.actions[parts[1]] = append(rep.actions[parts[1]], res)
		default:
			return nil, fmt.Errorf("line %d: %w: unknown result %s %s", n, errParse, res.kind, res.label)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return rep, nil
}

// addPair files a load run of a proxy/direct pair by proxy and target,
// keeping the proxies in the order they came.
func addPair(m map[string]map[string]*result, ord *[]string, proxy, target string, res *result) {
	if _, ok := m[proxy]; !ok {
		m[proxy] = map[string]*result{}
		*ord = append(*ord, proxy)
	}
	m[proxy][target] = res
}

func reportCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: report results.tsv", errUsage)
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("open results: %w", err)
	}
	defer f.Close()
	rep, err := parseReport(f)
	if err != nil {
		return err
	}
	rep.render(out)
	return nil
}

func median(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// field collects a numeric field of results that have it.
func field(rs []*result, key string) []float64 {
	var v []float64
	for _, r := range rs {
		if x, ok := r.num(key); ok {
			v = append(v, x)
		}
	}
	return v
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + " ms" }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// goal is one row of the goals table.
type goal struct{ text, measured, verdict string }

// render writes the report's tables, then the goals with their verdicts,
// and returns the goals.
func (rep *report) render(w io.Writer) []goal {
	var goals []goal
	rep.writeCPU(w)
	goals = append(goals, rep.writePeak(w)...)
	goals = append(goals, rep.writeHalf(w)...)
	rep.writeSame(w)
	goals = append(goals, rep.writeSustain(w)...)
	rep.writeTLS(w)
	rep.writeLogCost(w)
	goals = append(goals, rep.writeReliability(w)...)
	goals = append(goals, rep.writeGoBench(w)...)
	if len(rep.failures) > 0 {
		fmt.Fprintf(w, "#### Not measured\n\n")
		for _, f := range rep.failures {
			fmt.Fprintf(w, "- %s: %s\n", f.label, f.str("why"))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "#### Goals\n\n| goal | measured | verdict |\n|---|---|---|\n")
	for _, g := range goals {
		fmt.Fprintf(w, "| %s | %s | %s |\n", g.text, g.measured, g.verdict)
	}
	return goals
}

// writeCPU: how much of the machine's CPU time each phase had. Steal is
// time the hypervisor gave to other guests: a phase with 30 % steal ran on
// about 1.4 of the 2 cores.
func (rep *report) writeCPU(w io.Writer) {
	if len(rep.cpu) == 0 {
		return
	}
	fmt.Fprintf(w, "#### The machine's CPUs during each phase (all processes, from /proc/stat and /proc/<pid>/stat)\n\n")
	fmt.Fprintf(w, "| phase | busy | steal (taken by the hypervisor) | idle | largest users, %% of one core |\n|---|---|---|---|---|\n")
	for _, r := range rep.cpu {
		top := strings.ReplaceAll(r.str("top"), ",", ", ")
		top = strings.ReplaceAll(top, ":", " ")
		fmt.Fprintf(w, "| %s | %s %% | %s %% | %s %% | %s |\n", r.label, r.str("busy"), r.str("steal"), r.str("idle"), top)
	}
	fmt.Fprintln(w)
}
