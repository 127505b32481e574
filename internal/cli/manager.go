package cli

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/client"
)

func newManagerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "manager", Short: "List and remove managers (the store's members)"}
	cmd.AddCommand(&cobra.Command{
		Use:   "ls",
		Short: "List the managers: API, leader, store membership and size",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				ms, err := c.Managers(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(ms)
				}
				printManagers(g.stdout, ms)
				g.refreshServers(ms)
				return nil
			})
		},
	})
	var force bool
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a manager from the store membership (it stops)",
		Long: `rm removes a manager's etcd member; the removed manager stops. It refuses to remove the
last manager, and without --force to leave fewer healthy managers than a quorum or an even
number of managers (which tolerate no more failures than one fewer).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				if err := c.RemoveManager(cmd.Context(), args[0], force); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "manager %s removed\n", args[0])
				return nil
			})
		},
	}
	rm.Flags().BoolVar(&force, "force", false, "remove even if the managers left are even in number or lack a healthy quorum")
	cmd.AddCommand(rm)
	return cmd
}

func printManagers(w io.Writer, ms []client.Manager) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MANAGER\tAPI\tLEADER\tHEALTHY\tSTORE MEMBER\tDB SIZE")
	for _, m := range ms {
		leader := ""
		if m.Leader {
			leader = "leader"
		}
		member := "no"
		if m.StoreMember {
			member = "yes"
			if m.StoreLearner {
				member = "learner (not voting yet)"
			} else if m.StoreLeader {
				member = "yes (etcd leader)"
			}
		}
		api := m.APIURL
		if api == "" {
			api = m.APIAddr
		}
		if api == "" && m.PeerURL != "" {
			// A member that never started has no API and no name: its
			// peer URL is what `ruche manager rm` takes.
			api = "(peer " + m.PeerURL + ")"
		}
		size := "-"
		if m.DBSize > 0 {
			size = bytesHuman(m.DBSize)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", m.Name, api, leader, m.Healthy, member, size)
	}
	tw.Flush()
}

// refreshServers adds the managers' API URLs to the client config, so the
// CLI moves to another manager when one does not answer. Best effort.
func (g *globals) refreshServers(ms []client.Manager) {
	path := g.configPath()
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return
	}
	servers := slices.Clone(cfg.Servers)
	for _, m := range ms {
		if m.APIURL != "" && m.Healthy && !slices.Contains(servers, m.APIURL) {
			servers = append(servers, m.APIURL)
		}
	}
	if len(servers) != len(cfg.Servers) {
		cfg.Servers = servers
		cfg.Write(path)
	}
}
