// Command ruche runs compose stacks on a handful of machines.
package main

import (
	"os"
	goruntime "runtime"

	"github.com/ruche-platform/ruche/internal/cli"
	"github.com/ruche-platform/ruche/internal/netinit"
)

func init() {
	if os.Args[0] == netinit.InitPath {
		// The init executes the container's command from the main thread:
		// an exec from another thread briefly takes /proc/<pid> away
		// (the kernel moves the process ID to the executing thread), which
		// tools watching the container's process would see as its end.
		goruntime.LockOSThread()
	}
}

func main() {
	if os.Args[0] == netinit.InitPath {
		// Bind-mounted into a container as its init (see privnet).
		os.Exit(netinit.Main(os.Args[1:], os.Stderr))
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
