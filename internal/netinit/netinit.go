// Package netinit is the init of a container on ruche's networks: it
// waits until the agent has wired the container's namespace, then executes
// the container's command in its place. It is built twice: into ruche
// (run as InitPath, the ruche binary is the init) and, much smaller, as
// cmd/ruche-init, which the agent prefers (see internal/initbin): the
// init starts once per replica start, and ruche's own package
// initialisation costs 25 ms of CPU and 30 MB each time. So this package
// imports only what the wait needs.
package netinit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// InitPath is where the init (cmd/ruche-init, or the ruche binary) is
// bind-mounted (read-only) into a container on ruche's networks, as its
// entrypoint: the container's process must not start before its network
// exists, and Docker starts it before the agent can wire it. Run as
// InitPath, ruche is Main.
const InitPath = "/.ruche-init"

// initWait is how long Main waits for the network.
const initWait = 60 * time.Second

// Main waits until the container's namespace has a default route (the
// last thing privnet's Wire adds), then executes args in its place: the process
// keeps PID 1 (or its place under an init), its environment, signals and
// exit code. args[0] without a slash is looked up in the container's PATH,
// as the engine does.
func Main(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "ruche init: no command to run")
		return 2
	}
	if err := awaitNetwork(initWait); err != nil {
		fmt.Fprintf(stderr, "ruche init: %v\n", err)
		return 1
	}
	path := args[0]
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			fmt.Fprintf(stderr, "ruche init: %v\n", err)
			return 127
		}
		path = p
	}
	err := syscall.Exec(path, args, os.Environ())
	fmt.Fprintf(stderr, "ruche init: exec %s: %v\n", path, err)
	if errors.Is(err, syscall.ENOENT) {
		return 127 // as the engine: not found
	}
	return 126
}

// awaitNetwork returns once the namespace has a default route: woken by
// the kernel's route changes, or, where the watch cannot be opened or
// fails, by polling every 2 ms for the time left.
func awaitNetwork(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ready := func() bool { return hasDefaultRoute("/proc/net/route") }
	err := errors.ErrUnsupported
	if w, werr := WatchRoutes(0); werr == nil {
		err = w.Wait(ctx, ready)
		w.Close()
	}
	if err != nil && ctx.Err() == nil {
		err = poll(ctx, ready, 2*time.Millisecond)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no network after %s", timeout)
	}
	return err
}

// poll asks ready every interval until it says true or ctx ends.
func poll(ctx context.Context, ready func() bool, every time.Duration) error {
	for !ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
	return nil
}

// hasDefaultRoute reads a /proc/net/route file; false if it cannot.
func hasDefaultRoute(file string) bool {
	b, err := os.ReadFile(file)
	return err == nil && HasDefaultRoute(string(b))
}

// HasDefaultRoute reports whether a /proc/net/route table (the text) has
// a default route: what the init waits for, and the bench's sign that a
// container is wired.
func HasDefaultRoute(table string) bool {
	for i, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 2 && f[1] == "00000000" {
			return true
		}
	}
	return false
}
