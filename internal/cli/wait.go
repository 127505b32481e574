package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/cobra"
	"sort"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// waitSpec says what a command waits for after a change at revision rev.
type waitSpec struct {
	project string
	rev     int64
	// services must converge: their status observed rev and is terminal.
	services []string
	// gone must have no replica left.
	gone []string
	// projectGone waits for the whole project (ruche rm).
	projectGone bool
	timeout     time.Duration
}

// waitFlags are the --detach and --timeout flags of a command that waits
// for its change to converge.
type waitFlags struct {
	detach  bool
	timeout time.Duration
}

func addWaitFlags(cmd *cobra.Command, f *waitFlags, timeout time.Duration) {
	cmd.Flags().BoolVarP(&f.detach, "detach", "d", false, "return once the change is applied, without waiting")
	cmd.Flags().DurationVar(&f.timeout, "timeout", timeout, "how long to wait for convergence")
}

// wait follows the project and prints one line per service each time its
// progress changes, until everything converged (nil), something failed or
// the timeout passed (error).
func (g *globals) wait(ctx context.Context, c *client.Client, w waitSpec) error {
	if w.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	last := map[string]string{}
	var failures []string
	done := false
	err := c.WatchProject(ctx, w.project, func(p *client.Project) bool {
		done, failures = g.progress(p, w, last)
		return !done
	})
	if done {
		if len(failures) > 0 {
			return fmt.Errorf("%s did not converge: %s", w.project, strings.Join(failures, "; "))
		}
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s has not converged after %s (it goes on in the background: see `ruche ps %s`)", w.project, w.timeout, w.project)
	}
	return err
}

// progress prints what changed (to progressOut) and reports whether the
// wait is over.
func (g *globals) progress(p *client.Project, w waitSpec, last map[string]string) (done bool, failures []string) {
	byName := map[string]client.Service{}
	for _, s := range p.Services {
		byName[s.Name] = s
	}
	done = true
	names := append(append([]string{}, w.services...), w.gone...)
	sort.Strings(names)
	for _, name := range names {
		s, ok := byName[name]
		var line string
		switch {
		case contains(w.gone, name):
			n := len(s.Replicas)
			if n > 0 {
				done = false
			}
			line = fmt.Sprintf("%-16s removing, %d replica(s) left", name, n)
		case !ok || s.Update.ObservedRevision < w.rev:
			done = false
			line = fmt.Sprintf("%-16s %d/%d ready  pending", name, s.Ready, s.Desired)
		default:
			line = fmt.Sprintf("%-16s %d/%d ready  %s", name, s.Ready, s.Desired, describe(s.Update))
			if !s.Update.Terminal() {
				done = false
			} else if s.Update.Failed() {
				failures = append(failures, fmt.Sprintf("%s %s: %s", name, s.Update.State, s.Update.Message))
			}
		}
		if last[name] != line {
			last[name] = line
			fmt.Fprintln(g.progressOut(), line)
		}
	}
	if w.projectGone {
		n := 0
		for _, s := range p.Services {
			n += len(s.Replicas)
		}
		if n > 0 || p.Removing {
			done = false
		}
		line := fmt.Sprintf("%d replica(s) left", n)
		if n == 0 && p.Removing {
			line = "removing networks"
		}
		if last[""] != line {
			last[""] = line
			fmt.Fprintln(g.progressOut(), line)
		}
	}
	return done, failures
}

func describe(u client.UpdateStatus) string {
	s := u.State
	if s == "" {
		s = "pending"
	}
	if u.Version > 0 {
		s += fmt.Sprintf(" (version %d)", u.Version)
	}
	if u.Message != "" && !u.Terminal() {
		s += ": " + u.Message
	}
	return s
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
