package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// The reliability scenarios run.sh names, and the ones with a goal.
const (
	relRucheRoll = "ruche-roll"
	relRucheKill = "ruche-kill"
)

// phases places each failed request after the last action that had begun
// when it failed ("before any action" otherwise). Times are unix seconds.
func phases(actions []*result, errs []*result) map[string]int {
	out := map[string]int{}
	for _, e := range errs {
		t, ok := e.num("t")
		if !ok {
			continue
		}
		in := "before any action"
		best := -1.0
		for _, a := range actions {
			s, ok := a.num("start")
			if ok && s <= t && s > best {
				best, in = s, "after "+a.str("name")+" began"
			}
		}
		out[in]++
	}
	return out
}

func (rep *report) writeReliability(w io.Writer) []goal {
	roll := goal{text: "300 req/s mixed GET/POST for 60 s, rolling update and scale 2→1→2: 0 failed requests", measured: notMeasured, verdict: "not met (" + notMeasured + ")"}
	kill := goal{text: "a replica killed with SIGKILL: 0 failed GETs", measured: notMeasured, verdict: "not met (" + notMeasured + ")"}
	if len(rep.relOrd) == 0 {
		return []goal{roll, kill}
	}
	fmt.Fprintf(w, "#### Reliability: failed requests while replicas change\n\n")
	fmt.Fprintf(w, "| scenario | load | sent | failed | errors | failures placed in time |\n|---|---|---|---|---|---|\n")
	for _, sc := range rep.relOrd {
		r := rep.rel[sc]
		label := "rel/" + sc
		placed := phases(rep.actions[sc], rep.errors[label])
		var ph []string
		for _, k := range slices.Sorted(maps.Keys(placed)) {
			ph = append(ph, fmt.Sprintf("%s: %d", k, placed[k]))
		}
		if n, _ := r.num("failed"); int(n) > len(rep.errors[label]) {
			ph = append(ph, fmt.Sprintf("(only the first %d have a time)", len(rep.errors[label])))
		}
		fmt.Fprintf(w, "| %s | %s req/s × %s s, %s | %s | %s | %s | %s |\n", name(sc), r.str("rate"), r.str("duration_s"),
			mixOf(sc), r.str("sent"), r.str("failed"), orNone(r.str("errors")), orNone(strings.Join(ph, ";")))
		failedMsg := fmt.Sprintf("%s failed of %s sent", r.str("failed"), r.str("sent"))
		switch sc {
		case relRucheRoll:
			roll.measured = failedMsg + rep.swarmBeside("swarm-roll")
			roll.verdict = verdict(r.str("failed") == "0" && r.str("sent") != "0" && rep.actionsOK(sc))
			if !rep.actionsOK(sc) {
				roll.verdict += " (an action failed, see the timeline)"
			}
		case relRucheKill:
			kill.measured = failedMsg + rep.swarmBeside("swarm-kill")
			kill.verdict = verdict(r.str("failed") == "0" && r.str("sent") != "0" && rep.actionsOK(sc))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Timeline (seconds from the start of each load):\n\n")
	for _, sc := range rep.relOrd {
		start, _ := rep.rel[sc].num("start")
		var acts []string
		for _, a := range rep.actions[sc] {
			s, _ := a.num("start")
			e, _ := a.num("end")
			st := ""
			if a.str("rc") != "0" {
				st = ", FAILED: exit " + a.str("rc")
			}
			acts = append(acts, fmt.Sprintf("%s %.1f–%.1f s%s", a.str("name"), s-start, e-start, st))
		}
		fmt.Fprintf(w, "- %s: %s\n", name(sc), orNone(strings.Join(acts, ";")))
	}
	fmt.Fprintln(w)
	return []goal{roll, kill}
}

func (rep *report) actionsOK(sc string) bool {
	for _, a := range rep.actions[sc] {
		if a.str("rc") != "0" {
			return false
		}
	}
	return len(rep.actions[sc]) > 0
}

func (rep *report) swarmBeside(sc string) string {
	r, ok := rep.rel[sc]
	if !ok {
		for _, f := range rep.failures {
			if f.label == "rel/"+sc {
				return " (Swarm's routing mesh: not measured, see \"Not measured\")"
			}
		}
		return ""
	}
	return fmt.Sprintf(" (Swarm's routing mesh, same load: %s failed of %s)", r.str("failed"), r.str("sent"))
}

func mixOf(sc string) string {
	if strings.HasSuffix(sc, "-kill") {
		return "GET /"
	}
	return "GET / and POST /echo alternating"
}
