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

// The scenarios run.sh measures, in the order of the table.
const (
	scenarioDockerRun = "docker-run"
	// scenarioDockerRunNet is context, not a goal: docker run on a
	// user-defined network, as ruche's replicas are on their project's.
	scenarioDockerRunNet = "docker-run-net"
	// scenarioDockerRunNone is context too: docker run without any Docker
	// network (--network none), the start cost left when the platform
	// wires containers itself (DESIGN.md, private networks).
	scenarioDockerRunNone = "docker-run-none"
	// scenarioWired is context: bench/netwire, a prototype of the
	// platform wiring containers itself; converged = all wired (the
	// command returns then), not merely running.
	scenarioWired = "wired"
	// scenarioRuche: ruche up with its default networks (ruche's own, as
	// root); converged = every replica's namespace has its default route
	// (converge -network-ready).
	scenarioRuche = "ruche"
	// scenarioRucheDocker: ruche up --networks docker (a Docker network
	// per project network), context.
	scenarioRucheDocker = "ruche-docker"
	scenarioSwarm       = "swarm"
	// scenarioSwarmNet is context: Swarm's service on an overlay network
	// of its own, as `docker stack deploy` gives each stack.
	scenarioSwarmNet = "swarm-net"
	processRuche     = "ruche-up"
	processDockerd   = "dockerd"
)

// Goals of issue 2.
const (
	maxRatioToDockerRun = 1.3
	maxIdleRSSBytes     = 100e6 // 100 MB, decimal: the stricter reading
)

var scenarioLabels = map[string]string{
	scenarioDockerRun:     "20 × `docker run -d` in parallel (baseline)",
	scenarioDockerRunNet:  "20 × `docker run -d` in parallel on a network of their own (context)",
	scenarioDockerRunNone: "20 × `docker run -d --network none` in parallel (context)",
	scenarioWired:         "prototype: 20 containers without a Docker network, wired by netlink (`bench/netwire`, context; converged = all wired)",
	scenarioRuche:         "`ruche deploy` (ruche up: ruche's networks, its default as root; converged = every replica wired: its namespace has its default route)",
	scenarioRucheDocker:   "`ruche deploy` (ruche up --networks docker: a Docker network per project network, context)",
	scenarioSwarm:         "`docker service create --detach=false` (Swarm)",
	scenarioSwarmNet:      "the same on an overlay network of its own, endpoint mode dnsrr (Swarm, context)",
}

// trial is one converge measurement, in seconds.
type trial struct {
	running float64 // launch until every replica's container was running
	command float64 // launch until the command returned
	first   float64 // launch until the first container started
}

type results struct {
	order    []string
	trials   map[string][]trial
	failures map[string][]string
	rss      map[string]int64 // process -> max KiB
	rssN     map[string]int   // process -> samples
}

// parseResults reads the lines run.sh collects:
//
//	converge <scenario> <trial> <running_s> <command_s> <first_s>
//	failed   <scenario> <trial> <message>
//	rss      <process>  <max_kib> <samples,...>
func parseResults(r io.Reader) (*results, error) {
	res := &results{trials: map[string][]trial{}, failures: map[string][]string{}, rss: map[string]int64{}, rssN: map[string]int{}}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Split(text, "\t")
		bad := func(why string) error { return fmt.Errorf("%w: line %d: %s: %q", errParse, line, why, text) }
		switch f[0] {
		case "converge":
			if len(f) != 6 {
				return nil, bad("want 6 fields")
			}
			var v [3]float64
			for i := range v {
				x, err := strconv.ParseFloat(f[3+i], 64)
				if err != nil || x < 0 {
					return nil, bad("bad seconds")
				}
				v[i] = x
			}
			res.add(f[1])
			res.trials[f[1]] = append(res.trials[f[1]], trial{running: v[0], command: v[1], first: v[2]})
		case "failed":
			if len(f) < 3 {
				return nil, bad("want scenario, trial, message")
			}
			res.add(f[1])
			res.failures[f[1]] = append(res.failures[f[1]], "trial "+f[2]+": "+strings.Join(f[3:], " "))
		case "rss":
			if len(f) != 4 {
				return nil, bad("want 4 fields")
			}
			kib, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil || kib <= 0 {
				return nil, bad("bad KiB")
			}
			res.rss[f[1]] = kib
			res.rssN[f[1]] = len(strings.Split(f[3], ","))
		default:
			return nil, bad("unknown record")
		}
	}
	return res, sc.Err()
}

func (r *results) add(scenario string) {
	if !slices.Contains(r.order, scenario) {
		r.order = append(r.order, scenario)
	}
}

// stats of one series: the median (mean of the two middle values for an
// even count) and the worst (largest).
type stats struct {
	n             int
	median, worst float64
}

func summarize(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{n: len(s), median: m, worst: s[len(s)-1]}
}

func (r *results) series(scenario string, pick func(trial) float64) stats {
	var v []float64
	for _, t := range r.trials[scenario] {
		v = append(v, pick(t))
	}
	return summarize(v)
}

func running(t trial) float64 { return t.running }
func command(t trial) float64 { return t.command }
func first(t trial) float64   { return t.first }

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	replicas := fs.Int("replicas", 20, "replicas in the converge scenarios")
	idle := fs.Int("idle-replicas", 50, "replicas running during the RSS samples")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: report results.tsv", errUsage)
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := parseResults(f)
	if err != nil {
		return err
	}
	writeReport(os.Stdout, res, *replicas, *idle)
	return nil
}

func secs(v float64) string { return fmt.Sprintf("%.2f s", v) }

func writeReport(w io.Writer, r *results, replicas, idle int) {
	fmt.Fprintf(w, "#### Convergence: %d replicas of ruche-hello:latest\n\n", replicas)
	fmt.Fprintf(w, "Converged = all %d containers running (first moment, from Docker's event stream); for ruche on its own networks, all %d wired (each container's namespace has its default route: its containers start before ruche wires them).\n", replicas, replicas)
	fmt.Fprintln(w, "First = the first container running.")
	fmt.Fprintf(w, "Returned = the command came back (`docker run -d` ×%d: the last one; ruche: every replica ready, then its 5 s monitor window; Swarm: its 5 s stability check).\n\n", replicas)
	fmt.Fprintln(w, "| scenario | trials ok | first, median | converged, median | converged, worst | returned, median | returned, worst |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, sc := range r.order {
		label := scenarioLabels[sc]
		if label == "" {
			label = sc
		}
		run, cmd, fst := r.series(sc, running), r.series(sc, command), r.series(sc, first)
		if sc == scenarioWired {
			run = cmd // running is not enough: converged once wired
		}
		total := run.n + len(r.failures[sc])
		if run.n == 0 {
			fmt.Fprintf(w, "| %s | 0/%d | – | – | – | – | – |\n", label, total)
			continue
		}
		fmt.Fprintf(w, "| %s | %d/%d | %s | %s | %s | %s | %s |\n", label, run.n, total,
			secs(fst.median), secs(run.median), secs(run.worst), secs(cmd.median), secs(cmd.worst))
	}
	for _, sc := range r.order {
		for _, f := range r.failures[sc] {
			fmt.Fprintf(w, "\nFailed, %s: %s\n", sc, f)
		}
	}
	writeNetworkContext(w, r)

	fmt.Fprintf(w, "\n#### Idle memory: `ruche up` with %d replicas running\n\n", idle)
	fmt.Fprintln(w, "| process | VmRSS, max of samples | samples |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, p := range []string{processRuche, processDockerd} {
		kib, ok := r.rss[p]
		if !ok {
			fmt.Fprintf(w, "| %s | not measured | 0 |\n", p)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %d |\n", p, memory(kib), r.rssN[p])
	}

	fmt.Fprintln(w, "\n#### Goals (medians)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| goal | measured | verdict |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, g := range goals(r, replicas, idle) {
		fmt.Fprintf(w, "| %s | %s | %s |\n", g.goal, g.measured, g.verdict)
	}
}

// writeNetworkContext compares, when measured, docker run on a network of
// their own with docker run on the default bridge and with ruche, whose
// replicas are on their project's network.
func writeNetworkContext(w io.Writer, r *results) {
	netRun := r.series(scenarioDockerRunNet, running)
	base, rRun := r.series(scenarioDockerRun, running), r.series(scenarioRucheDocker, running)
	if netRun.n == 0 || base.n == 0 || base.median == 0 || netRun.median == 0 {
		return
	}
	fmt.Fprintf(w, "\nContext (not a goal): on a network of their own, the same `docker run -d` converged in %s, %.2f× their time on the default bridge",
		secs(netRun.median), netRun.median/base.median)
	if rRun.n > 0 {
		fmt.Fprintf(w, "; ruche with `--networks docker`, whose replicas join their project's Docker network, took %.2f× that", rRun.median/netRun.median)
	}
	fmt.Fprintln(w, ".")
	if sn := r.series(scenarioSwarmNet, running); sn.n > 0 {
		fmt.Fprintf(w, "Swarm on a network of its own (as `docker stack deploy` gives each stack) converged in %s", secs(sn.median))
		if rRun.n > 0 {
			fmt.Fprintf(w, "; ruche with `--networks docker`, on its project's Docker network, took %.2f× that", rRun.median/sn.median)
		}
		fmt.Fprintln(w, ".")
	}
	if none := r.series(scenarioDockerRunNone, running); none.n > 0 {
		fmt.Fprintf(w, "Without any Docker network (`--network none`, what is left to dockerd when the platform wires containers itself) they converged in %s, %.2f× their time on the default bridge.\n",
			secs(none.median), none.median/base.median)
	}
	if wired := r.series(scenarioWired, command); wired.n > 0 {
		fmt.Fprintf(w, "The prototype of that wiring (`bench/netwire`: Docker API calls, no CLI; a veth pair, an address and a route by netlink per container; a waiter holding each command until then) had all its containers wired in %s", secs(wired.median))
		if sw := r.series(scenarioSwarm, running); sw.n > 0 && sw.median > 0 {
			fmt.Fprintf(w, ", %.2f× Swarm's convergence", wired.median/sw.median)
		}
		fmt.Fprintln(w, "; it is not ruche (no store, scheduler, IPAM or DNS).")
	}
}

func memory(kib int64) string {
	return fmt.Sprintf("%.1f MiB (%.1f MB)", float64(kib)/1024, float64(kib)*1024/1e6)
}

type goal struct{ goal, measured, verdict string }

const (
	verdictMet         = "met"
	verdictNotMet      = "not met"
	verdictNotMeasured = "not measured"
)

func verdict(ok bool) string {
	if ok {
		return verdictMet
	}
	return verdictNotMet
}

// goals compares medians. A failed ruche trial fails the ruche goals: a
// deploy that did not converge is not a fast one.
func goals(r *results, replicas, idle int) []goal {
	var out []goal
	base := r.series(scenarioDockerRun, running)
	swarmRun, swarmCmd := r.series(scenarioSwarm, running), r.series(scenarioSwarm, command)
	rRun, rCmd := r.series(scenarioRuche, running), r.series(scenarioRuche, command)
	// A failed trial of a scenario fails its goals: a deploy that did not
	// converge is not a fast one.
	failNote := func(sc string) string {
		if n := len(r.failures[sc]); n > 0 {
			return fmt.Sprintf("; %d %s trial(s) failed", n, sc)
		}
		return ""
	}
	ratio := func(name, sc string, a, b stats) goal {
		g := goal{goal: name}
		if a.n == 0 || b.n == 0 || b.median == 0 {
			g.measured, g.verdict = "–", verdictNotMeasured
			return g
		}
		q := a.median / b.median
		g.measured = fmt.Sprintf("%.2f× (%s vs %s)%s", q, secs(a.median), secs(b.median), failNote(sc))
		g.verdict = verdict(q <= maxRatioToDockerRun && failNote(sc) == "")
		return g
	}
	faster := func(name, sc string, a, b stats) goal {
		g := goal{goal: name}
		if a.n == 0 || b.n == 0 {
			g.measured, g.verdict = "–", verdictNotMeasured
			return g
		}
		g.measured = fmt.Sprintf("%s vs %s%s", secs(a.median), secs(b.median), failNote(sc))
		g.verdict = verdict(a.median < b.median && failNote(sc) == "")
		return g
	}
	dkRun, dkCmd := r.series(scenarioRucheDocker, running), r.series(scenarioRucheDocker, command)
	out = append(out,
		ratio(fmt.Sprintf("%d replicas converge in ≤ %.1f× the time of %d parallel `docker run` (ruche: all wired; docker run: all running)", replicas, maxRatioToDockerRun, replicas), scenarioRuche, rRun, base),
		ratio("same, counting ruche until `ruche deploy` returns (every replica ready)", scenarioRuche, rCmd, base),
		faster("faster than Swarm (ruche: all wired; Swarm: all running)", scenarioRuche, rRun, swarmRun),
		faster("faster than Swarm, command to command (`ruche deploy` vs `docker service create --detach=false`)", scenarioRuche, rCmd, swarmCmd),
	)
	if dkRun.n > 0 || len(r.failures[scenarioRucheDocker]) > 0 {
		out = append(out,
			ratio("context, with `--networks docker`: ≤ 1.3× `docker run` (both: all running)", scenarioRucheDocker, dkRun, base),
			faster("context, with `--networks docker`: faster than Swarm (both: all running)", scenarioRucheDocker, dkRun, swarmRun),
			faster("context, with `--networks docker`: faster than Swarm, command to command", scenarioRucheDocker, dkCmd, swarmCmd),
		)
	}
	g := goal{goal: fmt.Sprintf("idle `ruche up` with %d replicas under 100 MB RSS", idle)}
	if kib, ok := r.rss[processRuche]; ok {
		g.measured = memory(kib)
		g.verdict = verdict(float64(kib)*1024 < maxIdleRSSBytes)
	} else {
		g.measured, g.verdict = "–", verdictNotMeasured
	}
	return append(out, g)
}
