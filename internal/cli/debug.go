package cli

import (
	"fmt"
	"io"
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
			var n int64
			err = createFile(path, "profile", func(w io.Writer) (err error) {
				n, err = c.Profile(cmd.Context(), name, seconds, w)
				return err
			}, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s profile written to %s (%s): go tool pprof -top %s\n", name, path, bytesHuman(n), path)
			return nil
		},
	}
	cmd.Flags().IntVar(&seconds, "seconds", 0, "how long to sample the cpu profile (default 30, at most 120)")
	return cmd
}
