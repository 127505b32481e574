package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newDebugCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug",
		Short: "Look inside a running daemon",
	}
	cmd.AddCommand(newDebugProfileCmd(g))
	return cmd
}

func newDebugProfileCmd(g *globals) *cobra.Command {
	var seconds int
	cmd := &cobra.Command{
		Use:   "profile NAME FILE",
		Short: "Write a profile of the manager that answers to FILE, for go tool pprof",
		Long: `NAME is cpu (sampled for --seconds) or one of the Go runtime's profiles: heap, allocs,
goroutine, block, mutex, threadcreate. The profile is of the ruche process behind the first
manager that answers, with its ingress and agent when they run in it (ruche up). Read it with
go tool pprof -top FILE. Needs an admin token.`,
		Example: "  ruche debug profile cpu --seconds 20 cpu.pprof\n  ruche debug profile heap heap.pprof",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, path := args[0], args[1]
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s exists: choose a new file name", path)
			}
			if seconds != 0 && name != "cpu" {
				return fmt.Errorf("--seconds is for the cpu profile, not %s", name)
			}
			if seconds < 0 || seconds > 120 {
				return fmt.Errorf("--seconds %d: a whole number from 1 to 120", seconds)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			tmp := path + ".partial"
			f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("profile file: %w", err)
			}
			n, err := c.Profile(cmd.Context(), name, seconds, f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp, path)
			}
			if err != nil {
				os.Remove(tmp)
				return err
			}
			fmt.Fprintf(g.stdout, "%s profile written to %s (%s): go tool pprof -top %s\n", name, path, bytesHuman(n), path)
			return nil
		},
	}
	cmd.Flags().IntVar(&seconds, "seconds", 0, "how long to sample the cpu profile (default 30, at most 120)")
	return cmd
}
