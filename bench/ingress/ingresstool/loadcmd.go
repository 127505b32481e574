package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

type requestsFlag []request

func (f *requestsFlag) String() string { return fmt.Sprint(*f) }

func (f *requestsFlag) Set(s string) error {
	r, err := parseRequest(s)
	if err != nil {
		return err
	}
	*f = append(*f, r)
	return nil
}

// loadCmd runs one constant-rate load and prints its "load" line, then
// one "error" line per failed request kept (time and kind), for the
// report to place failures against what happened meanwhile.
func loadCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	addr := fs.String("addr", "", "host:port to connect to (loopback or a container of the bench)")
	host := fs.String("host", "", "Host header (default: -addr)")
	label := fs.String("label", "load", "label of the result line")
	rate := fs.Float64("rate", 0, "requests per second")
	duration := fs.Duration("duration", 0, "recorded phase")
	warmup := fs.Duration("warmup", 0, "unrecorded phase at the same rate before it")
	conns := fs.Int("conns", 64, "connections (one worker each)")
	timeout := fs.Duration("timeout", 10*time.Second, "per request")
	maxEvents := fs.Int("error-lines", 1000, "failed requests printed with their time, at most")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile here")
	var mix requestsFlag
	fs.Var(&mix, "req", `a request of the mix, "GET /bytes/1024" or "POST /echo" (repeatable; cycled)`)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *addr == "" || len(mix) == 0 {
		return fmt.Errorf("%w: load needs -addr and at least one -req", errUsage)
	}
	if *host == "" {
		*host = *addr
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	res, err := runLoad(ctx, loadConfig{
		rate: *rate, warmup: *warmup, duration: *duration, conns: *conns, timeout: *timeout,
		host: *host, mix: mix, maxErrorEvents: *maxEvents,
		dial: func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", *addr) },
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, loadLine(*label, *rate, res))
	for _, e := range res.events {
		fmt.Fprintln(out, newResult("error", *label).set("t", unixSeconds(e.at)).set("kind", e.kind))
	}
	return nil
}

// loadLine is the result line of a run: counts, the achieved rate and
// latency percentiles (ms) of the successful requests.
func loadLine(label string, rate float64, res *loadResult) *result {
	r := newResult("load", label).
		set("rate", rate).
		set("duration_s", res.duration.Seconds()).
		set("sent", res.sent).
		set("ok", res.ok).
		set("failed", res.failed).
		set("warmup_failed", res.warmupFailed)
	achieved := 0.0
	if res.elapsed > 0 {
		achieved = float64(res.ok+res.failed) / max(res.elapsed.Seconds(), res.duration.Seconds())
	}
	r.set("achieved", strconv.FormatFloat(achieved, 'f', 1, 64))
	for _, p := range []struct {
		key string
		q   float64
	}{{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"p999", 0.999}, {"max", 1}} {
		r.set(p.key, percentile(res.lat, p.q))
	}
	r.set("late", res.late).
		set("max_late", res.maxLate).
		set("dials", res.dials).
		set("retries", res.retries).
		set("start", unixSeconds(res.start))
	var errs []string
	for _, k := range slices.Sorted(maps.Keys(res.errs)) {
		errs = append(errs, sanitize(k)+"="+strconv.Itoa(res.errs[k]))
	}
	return r.set("errors", strings.Join(errs, ";"))
}

func unixSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMicro())/1e6, 'f', 6, 64)
}
