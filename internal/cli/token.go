package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/client"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Join tokens: let a machine join the cluster",
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenLsCmd(g), newTokenRmCmd(g))
	return cmd
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var role string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Make a join token (single use, expiring) and print the command that joins with it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				jt, err := c.CreateJoinToken(cmd.Context(), role, ttl)
				if err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(jt)
				}
				server := ""
				if len(jt.Managers) > 0 {
					server = jt.Managers[0]
				} else if s := c.Servers(); len(s) > 0 {
					server = s[0]
				}
				command := "ruche agent"
				if jt.Role == client.JoinRoleManager {
					command = "ruche server"
				}
				fmt.Fprintf(g.stdout, "Join token for a new %s, valid once until %s (it is shown only now):\n\n  %s\n\n",
					jt.Role, jt.Expires.Local().Format(time.RFC3339), jt.Token)
				fmt.Fprintf(g.stdout, "On the new machine, run:\n\n  %s --join %s --token %s --ca-hash %s\n",
					command, server, jt.Token, jt.CAHash)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", client.JoinRoleAgent, "what the machine joins as: agent or manager")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token can be used")
	return cmd
}

func newTokenLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the join tokens not used yet",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				ts, err := c.JoinTokens(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(ts)
				}
				tw := g.table()
				fmt.Fprintln(tw, "ID\tROLE\tCREATED\tEXPIRES")
				for _, t := range ts {
					exp := t.Expires.Local().Format(time.RFC3339)
					if time.Now().After(t.Expires) {
						exp += " (expired)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Role, t.Created.Local().Format(time.RFC3339), exp)
				}
				return tw.Flush()
			})
		},
	}
}

func newTokenRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID",
		Short: "Revoke a join token not used yet (ID as ruche token ls shows it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				if err := c.RemoveJoinToken(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "join token %s revoked\n", args[0])
				return nil
			})
		},
	}
}
