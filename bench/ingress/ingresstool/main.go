// Command ingresstool is the measuring half of bench/ingress/run.sh: the
// script sets the scene (ruche up, nginx, HAProxy, Caddy, Swarm) and runs
// wrk and h2load; ingresstool generates constant-rate load, turns the
// tools' outputs into result lines and writes the report.
//
//	ingresstool load -addr HOST:PORT -host NAME -rate R -duration D [flags]
//	    open-loop, constant-rate HTTP/1.1 load; prints one "load" line.
//	ingresstool wrk|h2load|gobench -label L < output
//	    turns a wrk --latency, h2load or `go test -bench` output into a
//	    result line.
//	ingresstool addrs -host NAME < routes.json
//	    the ready replicas' addresses behind a route (`ruche routes -o json`).
//	ingresstool report results.tsv
//	    the Markdown tables and verdicts of docs/benchmarks.md.
//
// Result lines are tab-separated: kind, label, then key=value fields.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/ruche-platform/ruche/bench/internal/benchcli"
)

func main() {
	benchcli.Main("ingresstool", run)
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "load":
		return loadCmd(ctx, args[1:], os.Stdout)
	case "wrk", "h2load", "gobench":
		return parseCmd(args[0], args[1:], os.Stdin, os.Stdout)
	case "addrs":
		return addrsCmd(args[1:], os.Stdin, os.Stdout)
	case "report":
		return reportCmd(args[1:], os.Stdout)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}
