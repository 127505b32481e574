// Command ruche-init is the init of containers on ruche's networks, the
// small build of internal/netinit: ruche embeds it (internal/initbin) and
// bind-mounts it into each such container as /.ruche-init. It is not
// meant to be run by hand.
package main

import (
	"os"
	"runtime"

	"github.com/ruche-platform/ruche/internal/netinit"
)

func init() {
	// It executes the container's command from the main thread: an exec
	// from another thread briefly takes /proc/<pid> away (the kernel moves
	// the process ID to the executing thread), which tools watching the
	// container's process would see as its end.
	runtime.LockOSThread()
}

func main() {
	os.Exit(netinit.Main(os.Args[1:], os.Stderr))
}
