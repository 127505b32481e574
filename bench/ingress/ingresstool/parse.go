package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// parseCmd turns a tool's output (stdin) into one result line.
func parseCmd(tool string, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet(tool, flag.ContinueOnError)
	label := fs.String("label", tool, "label of the result line")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("read %s output: %w", tool, err)
	}
	var r *result
	switch tool {
	case "wrk":
		r, err = parseWrk(*label, string(b))
	case "h2load":
		r, err = parseH2load(*label, string(b))
	case "gobench":
		r, err = parseGoBench(*label, string(b))
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(out, r)
	return nil
}

var (
	wrkRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkTotal    = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	h2Finished  = regexp.MustCompile(`(?m)^finished in ([0-9.]+)(us|ms|s), ([0-9.]+) req/s`)
	h2Requests  = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2Status    = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	h2Proto     = regexp.MustCompile(`(?m)^Application protocol: (\S+)`)
	h2ReqTime   = regexp.MustCompile(`(?m)^time for request:\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)`)
	goBenchLine = regexp.MustCompile(`(?m)^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([0-9.]+) ns/op(?:\s+([0-9.]+) B/op)?(?:\s+([0-9.]+) allocs/op)?`)
)

// toSeconds reads "1.23ms", "870.00us", "2.1s", "1m".
func toSeconds(num, unit string) (float64, error) {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %w", errParse, num, err)
	}
	switch unit {
	case "us":
		return v / 1e6, nil
	case "ms":
		return v / 1e3, nil
	case "s":
		return v, nil
	case "m":
		return v * 60, nil
	}
	return 0, fmt.Errorf("%w: unit %q", errParse, unit)
}

// toDuration is toSeconds as a duration, to the nanosecond.
func toDuration(num, unit string) (time.Duration, error) {
	s, err := toSeconds(num, unit)
	return time.Duration(math.Round(s * 1e9)), err
}

// parseWrk reads `wrk --latency` output: requests/s, the latency
// distribution, and every kind of error wrk counts.
func parseWrk(label, s string) (*result, error) {
	m := wrkRPS.FindStringSubmatch(s)
	t := wrkTotal.FindStringSubmatch(s)
	if m == nil || t == nil {
		return nil, fmt.Errorf("%w: no \"Requests/sec\" in wrk output:\n%s", errParse, s)
	}
	r := newResult("wrk", label).set("rps", m[1]).set("requests", t[1])
	secs, err := toSeconds(t[2], t[3])
	if err != nil {
		return nil, err
	}
	r.set("seconds", secs)
	for _, p := range wrkPct.FindAllStringSubmatch(s, -1) {
		d, err := toDuration(p[2], p[3])
		if err != nil {
			return nil, err
		}
		r.set("p"+p[1], d)
	}
	errs := 0
	if e := wrkSocket.FindStringSubmatch(s); e != nil {
		for i, k := range []string{"connect", "read", "write", "timeout"} {
			n, _ := strconv.Atoi(e[i+1])
			r.set("err_"+k, n)
			errs += n
		}
	}
	if e := wrkNon2xx.FindStringSubmatch(s); e != nil {
		n, _ := strconv.Atoi(e[1])
		r.set("non2xx", n)
		errs += n
	}
	return r.set("errors", errs), nil
}

// parseH2load reads h2load's summary: requests/s, outcomes, status codes,
// the negotiated protocol and the mean and max request time.
func parseH2load(label, s string) (*result, error) {
	f := h2Finished.FindStringSubmatch(s)
	q := h2Requests.FindStringSubmatch(s)
	if f == nil || q == nil {
		return nil, fmt.Errorf("%w: no \"finished in\" or \"requests:\" in h2load output:\n%s", errParse, s)
	}
	r := newResult("h2load", label).set("rps", f[3])
	secs, err := toSeconds(f[1], f[2])
	if err != nil {
		return nil, err
	}
	r.set("seconds", secs)
	for i, k := range []string{"total", "started", "done", "succeeded", "failed", "errored", "timeout"} {
		r.set(k, q[i+1])
	}
	if st := h2Status.FindStringSubmatch(s); st != nil {
		for i, k := range []string{"s2xx", "s3xx", "s4xx", "s5xx"} {
			r.set(k, st[i+1])
		}
	}
	if p := h2Proto.FindStringSubmatch(s); p != nil {
		r.set("proto", p[1])
	}
	if rt := h2ReqTime.FindStringSubmatch(s); rt != nil {
		maxT, err := toDuration(rt[3], rt[4])
		if err != nil {
			return nil, err
		}
		mean, err := toDuration(rt[5], rt[6])
		if err != nil {
			return nil, err
		}
		r.set("mean", mean).set("max", maxT)
	}
	return r, nil
}

// parseGoBench reads `go test -bench -benchmem` output: one line per
// benchmark; the label names the one wanted.
func parseGoBench(label, s string) (*result, error) {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		m := goBenchLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != label {
			continue
		}
		r := newResult("gobench", label).set("iterations", m[2]).set("ns_op", m[3])
		if m[4] == "" || m[5] == "" {
			return nil, fmt.Errorf("%w: %s has no B/op or allocs/op (run with -benchmem)", errParse, label)
		}
		return r.set("b_op", m[4]).set("allocs_op", m[5]), nil
	}
	return nil, fmt.Errorf("%w: no line of %s in the go test output:\n%s", errParse, label, s)
}
