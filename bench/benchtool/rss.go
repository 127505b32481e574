package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

type process struct {
	name    string
	pid     int
	samples []int64 // KiB
}

// rssCmd samples VmRSS of processes and prints, for each,
// "rss\t<name>\t<max KiB>\t<samples KiB, comma separated>".
func rssCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rss", flag.ContinueOnError)
	samples := fs.Int("samples", 7, "samples per process")
	every := fs.Duration("every", 5*time.Second, "time between samples")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var procs []*process
	for _, a := range fs.Args() {
		name, pidText, ok := strings.Cut(a, "=")
		pid, err := strconv.Atoi(pidText)
		if !ok || name == "" || err != nil || pid <= 0 {
			return fmt.Errorf("%w: rss name=pid ..., got %q", errUsage, a)
		}
		procs = append(procs, &process{name: name, pid: pid})
	}
	if len(procs) == 0 || *samples <= 0 {
		return fmt.Errorf("%w: rss [-samples N] [-every D] name=pid ...", errUsage)
	}
	t := time.NewTicker(*every)
	defer t.Stop()
	for i := range *samples {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
		for _, p := range procs {
			kib, err := readRSS(p.pid)
			if err != nil {
				return err
			}
			p.samples = append(p.samples, kib)
		}
	}
	for _, p := range procs {
		var top int64
		var s []string
		for _, v := range p.samples {
			top = max(top, v)
			s = append(s, strconv.FormatInt(v, 10))
		}
		fmt.Printf("rss\t%s\t%d\t%s\n", p.name, top, strings.Join(s, ","))
	}
	return nil
}

func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	defer f.Close()
	kib, err := parseVmRSS(f)
	if err != nil {
		return 0, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	return kib, nil
}

// parseVmRSS returns the VmRSS line of a /proc/<pid>/status file, in KiB
// (the kernel writes "kB" but means 1024 bytes).
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%w: unexpected VmRSS line %q", errParse, sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%w: no VmRSS line (a kernel thread or a zombie?)", errParse)
}
