package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/client"
)

func newRoutesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "routes",
		Short: "List every route, its replicas and their state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				routes, err := c.Routes(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(routes)
				}
				tw := g.table()
				fmt.Fprintln(tw, "ROUTE\tSERVICE\tPORT\tTLS\tREADY\tREPLICAS")
				for _, r := range routes {
					ready := 0
					var reps []string
					for _, rep := range r.Replicas {
						state := rep.State
						if state == "" {
							state = "pending"
						}
						if rep.Ready {
							ready++
							state = "ready"
						}
						reps = append(reps, rep.Name+" "+state)
					}
					fmt.Fprintf(tw, "%s%s\t%s/%s\t%d\t%s\t%d/%d\t%s\n", r.Host, r.PathPrefix, r.Project, r.Service, r.Port, r.TLS,
						ready, len(r.Replicas), strings.Join(reps, ", "))
				}
				return tw.Flush()
			})
		},
	}
}
