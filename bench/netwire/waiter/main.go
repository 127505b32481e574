// Command waiter is the tiny init of bench/netwire's prototype: it waits
// until its network namespace has a default route (the last thing the
// wiring adds), then executes its arguments in its place. A static binary
// bind-mounted into the container, as a platform that wires containers
// itself would need: the container's process must not start before its
// network exists.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: waiter PROGRAM [ARG...]")
		os.Exit(2)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !hasDefaultRoute() {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "waiter: no network after 60s")
			os.Exit(1)
		}
		time.Sleep(2 * time.Millisecond)
	}
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	fmt.Fprintln(os.Stderr, "waiter:", err)
	os.Exit(1)
}

// hasDefaultRoute reads /proc/net/route (this namespace's table).
func hasDefaultRoute() bool {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 2 && fs[1] == "00000000" {
			return true
		}
	}
	return false
}
