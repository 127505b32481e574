package main

import (
	"fmt"
	"io"
	"strings"
)

const notMeasured = "not measured"

func (rep *report) peakMedian(target string) (float64, bool) {
	return median(field(rep.peak[target], "rps"))
}

// writePeak: wrk at full speed, several rounds per target; medians.
func (rep *report) writePeak(w io.Writer) []goal {
	if len(rep.peakOrd) == 0 {
		w = io.Discard
	}
	fmt.Fprintf(w, "#### Throughput: 1 KiB answers over HTTP/1.1 keep-alive (wrk, closed loop)\n\n")
	fmt.Fprintf(w, "| target | rounds | req/s, median | req/s, min – max | p50, median | p99, median | errors, all rounds | × nginx | proxy CPU per request | backend CPU per request |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
	nginx, haveNginx := rep.peakMedian(targetNginx)
	for _, t := range rep.peakOrd {
		rs := rep.peak[t]
		rps := field(rs, "rps")
		med, _ := median(rps)
		p50, _ := median(field(rs, "p50"))
		p99, _ := median(field(rs, "p99"))
		errs := 0.0
		for _, e := range field(rs, "errors") {
			errs += e
		}
		ratio := "–"
		if haveNginx && nginx > 0 {
			ratio = fmt.Sprintf("%.2f×", med/nginx)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s – %s | %s | %s | %.0f | %s | %s | %s |\n", name(t), len(rs), fmtNum(med),
			fmtNum(minOf(rps)), fmtNum(maxOf(rps)), ms(p50), ms(p99), errs, ratio,
			cpuPerRequest(rs, "proxy_cpu_s"), cpuPerRequest(rs, "backend_cpu_s"))
	}
	fmt.Fprintln(w)

	ruche, haveRuche := rep.peakMedian(targetRuche)
	caddy, haveCaddy := rep.peakMedian(targetCaddy)
	g1 := goal{text: fmt.Sprintf("ruche ≥ %.1f× nginx's requests/s", minRatioToNginx), measured: notMeasured, verdict: "not met (" + notMeasured + ")"}
	if haveRuche && haveNginx && nginx > 0 {
		g1.measured = fmt.Sprintf("%.2f× (%s vs %s req/s, medians)", ruche/nginx, fmtNum(ruche), fmtNum(nginx))
		g1.verdict = verdict(ruche >= minRatioToNginx*nginx)
	}
	g2 := goal{text: "ruche ahead of Caddy", measured: notMeasured, verdict: "not met (" + notMeasured + ")"}
	if haveRuche && haveCaddy {
		g2.measured = fmt.Sprintf("%s vs %s req/s (medians)", fmtNum(ruche), fmtNum(caddy))
		g2.verdict = verdict(ruche > caddy)
	}
	return []goal{g1, g2}
}

func minOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// writeHalf: each proxy at half its own peak (constant rate, open loop),
// and the backend direct at the same rate; the p99 the proxy adds.
func (rep *report) writeHalf(w io.Writer) []goal {
	g := goal{text: fmt.Sprintf("p99 added by ruche at half its peak ≤ %.0f ms", maxAddedP99Ms), measured: notMeasured, verdict: "not met (" + notMeasured + ")"}
	rep.writeAdded(w, rep.half, rep.halfOrd, "#### Latency added at half of peak (constant rate, open loop; latency from the due time, see bench/README.md)",
		"rate (half its peak)", func(via, direct *result) {
			rate, _ := via.num("rate")
			p99v, _ := via.num("p99")
			p99d, _ := direct.num("p99")
			g.measured = fmt.Sprintf("%s (p99 %s via ruche, %s direct, at %s req/s)", ms(p99v-p99d), ms(p99v), ms(p99d), fmtNum(rate))
			ok := p99v-p99d <= maxAddedP99Ms && via.str("failed") == "0"
			g.verdict = verdict(ok)
			if via.str("failed") != "0" {
				g.measured += fmt.Sprintf("; %s requests failed", via.str("failed"))
			}
		})
	return []goal{g}
}

// writeSame: context for the goal above. Every proxy at one rate, ruche's
// half peak, so that what each adds at p99 compares at equal load (at
// their own half peaks the faster proxies run at higher rates).
func (rep *report) writeSame(w io.Writer) {
	rep.writeAdded(w, rep.same, rep.sameOrd, "#### Latency added at one rate for all: ruche's half peak (context)",
		"rate (ruche's half peak)", nil)
}

// writeAdded writes a table of proxy/direct pairs at a constant rate; ruche
// is handed its pair.
func (rep *report) writeAdded(w io.Writer, pairs map[string]map[string]*result, ord []string, title, rateCol string, ruche func(via, direct *result)) {
	if len(ord) == 0 {
		w = io.Discard
	}
	fmt.Fprintf(w, "%s\n\n", title)
	fmt.Fprintf(w, "| proxy | %s | p50 via proxy | p99 via proxy | p99 direct, same rate | p99 added | p50 added | failed (proxy / direct) | late sends (proxy / direct) |\n", rateCol)
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range ord {
		via, direct := pairs[p][p], pairs[p][targetDirect]
		if via == nil || direct == nil {
			fmt.Fprintf(w, "| %s | incomplete: one of the two runs is missing | | | | | | | |\n", name(p))
			continue
		}
		rate, _ := via.num("rate")
		p99v, _ := via.num("p99")
		p99d, _ := direct.num("p99")
		p50v, _ := via.num("p50")
		p50d, _ := direct.num("p50")
		fmt.Fprintf(w, "| %s | %s req/s | %s | %s | %s | %s | %s | %s / %s | %s / %s |\n", name(p), fmtNum(rate),
			ms(p50v), ms(p99v), ms(p99d), ms(p99v-p99d), ms(p50v-p50d),
			via.str("failed"), direct.str("failed"), via.str("late"), direct.str("late"))
		if p == targetRuche && ruche != nil {
			ruche(via, direct)
		}
	}
	fmt.Fprintln(w)
}

// writeSustain: 60 s at 10,000 requests/s.
func (rep *report) writeSustain(w io.Writer) []goal {
	if len(rep.sustOrd) == 0 {
		w = io.Discard
	}
	fmt.Fprintf(w, "#### Sustained constant rate (open loop, load generator on the same machine)\n\n")
	fmt.Fprintf(w, "| target | rate × duration | sent | ok | failed | completed/s | p50 | p90 | p99 | p99.9 | max | late sends (max) | errors |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	g := goal{text: fmt.Sprintf("%d s at %d req/s through ruche with zero errors", sustainSeconds, sustainRate), measured: notMeasured, verdict: "not met (" + notMeasured + ")"}
	for _, t := range rep.sustOrd {
		r := rep.sustain[t]
		fmt.Fprintf(w, "| %s | %s/s × %s s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (%s) | %s |\n", name(t),
			r.str("rate"), r.str("duration_s"), r.str("sent"), r.str("ok"), r.str("failed"), r.str("achieved"),
			msField(r, "p50"), msField(r, "p90"), msField(r, "p99"), msField(r, "p999"), msField(r, "max"),
			r.str("late"), msField(r, "max_late"), orNone(r.str("errors")))
		if t != targetRuche {
			continue
		}
		rate, _ := r.num("rate")
		dur, _ := r.num("duration_s")
		sent, _ := r.num("sent")
		okN, _ := r.num("ok")
		failed, _ := r.num("failed")
		achieved, _ := r.num("achieved")
		g.measured = fmt.Sprintf("%s failed of %s sent; %s completed/s; p99 %s, p99.9 %s", r.str("failed"), r.str("sent"),
			r.str("achieved"), msField(r, "p99"), msField(r, "p999"))
		switch {
		case rate < sustainRate || dur < sustainSeconds:
			g.verdict = fmt.Sprintf("not met (run at %s/s for %s s, shorter than the goal)", r.str("rate"), r.str("duration_s"))
		case failed > 0 || okN < sent:
			g.verdict = "not met"
		case achieved < achievedTolerance*rate:
			g.verdict = "not met (the rate was not held)"
		default:
			g.verdict = "met"
		}
	}
	fmt.Fprintln(w)
	return []goal{g}
}

func msField(r *result, key string) string {
	v, ok := r.num(key)
	if !ok {
		return "–"
	}
	return ms(v)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return strings.ReplaceAll(s, ";", ", ")
}

// writeTLS: h2load against the HTTPS port, over HTTP/2 and over
// HTTP/1.1 (context, no goal).
func (rep *report) writeTLS(w io.Writer) {
	if len(rep.tls) == 0 {
		return
	}
	fmt.Fprintf(w, "#### HTTPS: HTTP/2 and HTTP/1.1 over TLS (h2load; context, no goal)\n\n")
	fmt.Fprintf(w, "| target | protocol | req/s | succeeded / total | failed | errored | 2xx | mean request time | max |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.tls {
		_, t, _ := strings.Cut(r.label, "/")
		rps, _ := r.num("rps")
		fmt.Fprintf(w, "| %s | %s | %s | %s / %s | %s | %s | %s | %s | %s |\n", name(t), r.str("proto"), fmtNum(rps),
			r.str("succeeded"), r.str("total"), r.str("failed"), r.str("errored"), r.str("s2xx"), msField(r, "mean"), msField(r, "max"))
	}
	fmt.Fprintln(w)
}

// writeGoBench: the proxy's hot path, allocations per request.
func (rep *report) writeGoBench(w io.Writer) []goal {
	g1 := goal{text: fmt.Sprintf("proxy hot path: ≤ %d allocations per request", maxAllocsPerReq), measured: notMeasured, verdict: "not met (" + notMeasured + ")"}
	g2 := goal{text: "proxy hot path: no per-request copy buffer", measured: notMeasured, verdict: "not met (" + notMeasured + ")"}
	if len(rep.gobench) > 0 {
		fmt.Fprintf(w, "#### Go benchmark of the proxy (`go test -run - -bench BenchmarkProxy -benchmem ./internal/proxy`)\n\n")
		fmt.Fprintf(w, "| benchmark | iterations | ns/op | B/op | allocs/op |\n|---|---|---|---|---|\n")
	}
	for _, r := range rep.gobench {
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s |\n", r.label, r.str("iterations"), r.str("ns_op"), r.str("b_op"), r.str("allocs_op"))
		if r.label != hotPathBench {
			continue
		}
		allocs, _ := r.num("allocs_op")
		bytes, _ := r.num("b_op")
		g1.measured = fmt.Sprintf("%s allocs/op", r.str("allocs_op"))
		g1.verdict = verdict(allocs <= maxAllocsPerReq)
		g2.measured = fmt.Sprintf("%s B/op (a copy buffer would be ≥ %d B: io.Copy's is 32 KiB)", r.str("b_op"), copyBufferFloorB)
		g2.verdict = verdict(bytes < copyBufferFloorB)
	}
	if len(rep.gobench) > 0 {
		fmt.Fprintln(w)
	}
	return []goal{g1, g2}
}

// writeLogCost: the backend alone, logging each request, with Docker's
// json-file log and without (context: a per-request cost the other phases
// leave out, their backend runs with HELLO_QUIET=1).
func (rep *report) writeLogCost(w io.Writer) {
	if len(rep.logcost) == 0 {
		return
	}
	fmt.Fprintf(w, "#### The backend alone: the cost of its request log (wrk, direct; context: the other phases run it with HELLO_QUIET=1)\n\n")
	fmt.Fprintf(w, "| backend container | rounds | req/s, median | req/s, min – max | p99, median |\n|---|---|---|---|---|\n")
	for _, v := range []struct{ key, text string }{
		{"log", "`ruche-hello` logging each request, Docker's json-file log"},
		{"nolog", "`ruche-hello` logging each request, `--log-driver none`"},
	} {
		rs := rep.logcost[v.key]
		if len(rs) == 0 {
			continue
		}
		rps := field(rs, "rps")
		med, _ := median(rps)
		p99, _ := median(field(rs, "p99"))
		fmt.Fprintf(w, "| %s | %d | %s | %s – %s | %s |\n", v.text, len(rs), fmtNum(med), fmtNum(minOf(rps)), fmtNum(maxOf(rps)), ms(p99))
	}
	fmt.Fprintln(w)
}

// cpuPerRequest is the median over runs of the CPU time a process used
// during a wrk run divided by the requests of that run, in µs.
func cpuPerRequest(rs []*result, key string) string {
	var per []float64
	for _, r := range rs {
		cpu, ok1 := r.num(key)
		n, ok2 := r.num("requests")
		if ok1 && ok2 && n > 0 {
			per = append(per, cpu*1e6/n)
		}
	}
	m, ok := median(per)
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.0f µs", m)
}
