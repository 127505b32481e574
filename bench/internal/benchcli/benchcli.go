// Package benchcli is the command scaffolding the bench tools share
// (bench/benchtool, bench/ingress/ingresstool): a context that SIGINT or
// SIGTERM cancels, the error printed as "tool: error", and the exit code
// the bench scripts read: 1 on an error, 130 when interrupted, so that a
// script stops instead of going on with its next trial.
package benchcli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs a tool's command line: run gets os.Args[1:] and a context that
// SIGINT or SIGTERM cancels. It returns when run succeeds and exits with
// Exec's code when it fails.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Exec(ctx, name, run, os.Args[1:], os.Stderr)
	stop()
	if code != 0 {
		os.Exit(code)
	}
}

// Exec calls run and returns the exit code: 0 when it succeeds; otherwise
// it writes "name: error" to stderr and returns 130 when ctx was cancelled
// (interrupted), 1 when not.
func Exec(ctx context.Context, name string, run func(ctx context.Context, args []string) error, args []string, stderr io.Writer) int {
	err := run(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, name+": "+err.Error())
	if ctx.Err() != nil {
		return 130
	}
	return 1
}
