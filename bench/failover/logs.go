package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/ruche-platform/ruche/internal/testbed"
)

// pullLine matches what a daemon or an agent logs when it tries to pull:
// Swarm's task manager logs "pulling image failed" (error level, so the
// testbed's --log-level warn keeps it), ruche's agent "pulling: <image>".
var pullLine = regexp.MustCompile(`(?i)\bpull`)

// scanLogs copies every node's dockerd log and ruche logs into dir (the
// testbed's own go with it at Close) and returns the lines that speak of
// a pull, as "<file>: <line>".
func scanLogs(tb *testbed.Testbed, dir string) []string {
	var hits []string
	for _, n := range tb.Nodes() {
		paths := []string{filepath.Join(n.Dir(), "dockerd.log")}
		for _, p := range n.Procs() {
			paths = append(paths, p.LogPath)
		}
		seen := map[string]bool{}
		for _, p := range paths {
			if seen[p] {
				continue
			}
			seen[p] = true
			name := n.Name() + "-" + filepath.Base(p)
			h, err := copyScan(p, filepath.Join(dir, name), name)
			if err != nil && !os.IsNotExist(err) {
				hits = append(hits, fmt.Sprintf("%s: could not be read: %v", name, err))
			}
			hits = append(hits, h...)
		}
	}
	return hits
}

func copyScan(src, dst, name string) ([]string, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	var hits []string
	sc := bufio.NewScanner(io.TeeReader(in, out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if l := sc.Text(); pullLine.MatchString(l) {
			hits = append(hits, name+": "+strings.TrimSpace(l))
		}
	}
	return hits, sc.Err()
}

// swarmSockets lists what each node's dockerd listens on once the swarm
// exists (they can only be addresses of the node's namespace).
func swarmSockets(ctx context.Context, tb *testbed.Testbed) []string {
	var out []string
	for _, n := range tb.Nodes() {
		b, err := n.Exec(ctx, "ss", "-Hltunp")
		if err != nil {
			out = append(out, fmt.Sprintf("%s: ss: %v", n.Name(), err))
			continue
		}
		var socks []string
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 5 && strings.Contains(l, `"dockerd"`) {
				socks = append(socks, f[0]+" "+f[4])
			}
		}
		out = append(out, n.Name()+": "+strings.Join(socks, ", "))
	}
	return out
}
