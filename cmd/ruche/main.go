// Command ruche runs compose stacks on a handful of machines.
package main

import (
	"os"

	"github.com/ruche-platform/ruche/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
