package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/ruche-platform/ruche/client"
)

// addrsCmd reads `ruche routes -o json` and prints the address of every
// ready replica behind the route of -host, one a line. It fails when there
// is none, so run.sh can wait for it.
func addrsCmd(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("addrs", flag.ContinueOnError)
	host := fs.String("host", "", "the route's host")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var routes []client.Route
	if err := json.NewDecoder(in).Decode(&routes); err != nil {
		return fmt.Errorf("%w: routes JSON: %w", errParse, err)
	}
	addrs := readyAddrs(routes, *host)
	if len(addrs) == 0 {
		return fmt.Errorf("%w: no ready replica with an address behind %s", errNoReplica, *host)
	}
	for _, a := range addrs {
		fmt.Fprintln(out, a)
	}
	return nil
}

func readyAddrs(routes []client.Route, host string) []string {
	var addrs []string
	for _, r := range routes {
		if r.Host != host {
			continue
		}
		for _, rep := range r.Replicas {
			if rep.Ready && rep.Addr != "" {
				addrs = append(addrs, rep.Addr)
			}
		}
	}
	return addrs
}
