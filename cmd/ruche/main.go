// Command ruche runs compose stacks on a handful of machines.
package main

import (
	"os"

	"github.com/ruche-platform/ruche/internal/cli"
	"github.com/ruche-platform/ruche/internal/privnet"
)

func main() {
	if os.Args[0] == privnet.InitPath {
		// Bind-mounted into a container as its init (see privnet).
		os.Exit(privnet.InitMain(os.Args[1:], os.Stderr))
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
