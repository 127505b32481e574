// Command benchtool is the measuring half of bench/run.sh: run.sh sets the
// scene (images, ruche up, swarm) and benchtool times, samples and reports.
//
//	benchtool converge -prefix P -count N [-timeout D] -- command args...
//	    runs the command and prints "<running_s>\t<command_s>\t<first_s>":
//	    seconds from launch until N containers whose name starts with P were
//	    running at once (from the engine's event stream), until the command
//	    exited, and until the first of them started.
//	benchtool ports N
//	    prints N free TCP ports on 127.0.0.1, one a line.
//	benchtool rss [-samples N] [-every D] name=pid ...
//	    samples VmRSS of each process and prints "rss\tname\tmax_kib\tsamples".
//	benchtool report [-trials N] results.tsv
//	    turns the collected lines into the Markdown tables of docs/benchmarks.md.
package main

import (
	"context"
	"fmt"

	"github.com/ruche-platform/ruche/bench/internal/benchcli"
)

func main() {
	benchcli.Main("benchtool", run)
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "converge":
		return convergeCmd(ctx, args[1:])
	case "ports":
		return portsCmd(args[1:])
	case "rss":
		return rssCmd(ctx, args[1:])
	case "report":
		return reportCmd(args[1:])
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}
