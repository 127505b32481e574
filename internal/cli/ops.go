package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/client"
)

func (g *globals) table() *tabwriter.Writer {
	return tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
}

func newPsCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "ps [project]",
		Short: "List replicas: where they run, their state and ports",
		Long: `List replicas: where they run, their state and ports.

A replica being stopped (scaled down, replaced, removed) shows its state
with "(stopping)". Once it has shut down, the manager forgets it: it is
listed no more, even with --all, which only shows one in the moment before
that. What happened to it stays in ` + "`ruche events -p <project>`" + `.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				var projects []client.Project
				var err error
				if len(args) == 1 {
					p, err := c.Project(cmd.Context(), args[0])
					if err != nil {
						return err
					}
					projects = []client.Project{*p}
				} else if projects, err = c.Projects(cmd.Context()); err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(projects)
				}
				tw := g.table()
				fmt.Fprintln(tw, "PROJECT\tREPLICA\tSTATE\tREADY\tVERSION\tNODE\tPORTS\tRESTARTS\tMESSAGE")
				for _, p := range projects {
					for _, s := range p.Services {
						for _, r := range s.Replicas {
							if r.DesiredState == client.DesiredShutdown && !all && r.Status.State == client.StateShutdown {
								continue
							}
							state := r.Status.State
							if state == "" {
								state = client.StatePending
							}
							if r.DesiredState == client.DesiredShutdown && state != client.StateShutdown {
								state += " (stopping)"
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", p.Name, r.Name(), state, yesNo(r.Status.Ready),
								r.Version, r.Node, ports(r.Status.Ports), r.Status.Restarts, r.Status.Message)
						}
					}
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also show replicas shut down but not yet forgotten by the manager (it forgets them at once: see ruche events)")
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ports(ps []client.PortBinding) string {
	var out []string
	for _, p := range ps {
		host := p.HostIP
		if host == "" {
			host = "0.0.0.0"
		}
		b := fmt.Sprintf("%s:%d->%d/%s", host, p.Published, p.Target, p.Protocol)
		if p.Route {
			b += "(route)" // published by ruche for the ingress of other nodes
		}
		out = append(out, b)
	}
	return strings.Join(out, ",")
}

func newRollbackCmd(g *globals) *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "rollback project/service",
		Short: "Put a service back on its previous version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, s, err := splitService(args[0])
			if err != nil {
				return err
			}
			return g.withClient(func(c *client.Client, asJSON bool) error {
				ch, err := c.Rollback(cmd.Context(), p, s)
				if err != nil {
					return err
				}
				err = g.show(asJSON, ch, func() {
					fmt.Fprintf(g.stdout, "%s/%s: rolling back (%s)\n", p, s, strings.Join(ch.Fields, ", "))
				})
				if err != nil || wf.detach {
					return err
				}
				return g.wait(cmd.Context(), c, waitSpec{project: p, rev: ch.Revision, services: []string{s}, timeout: wf.timeout})
			})
		},
	}
	addWaitFlags(cmd, &wf, 10*time.Minute)
	return cmd
}

func newLogsCmd(g *globals) *cobra.Command {
	var opts client.LogOptions
	cmd := &cobra.Command{
		Use:   "logs [-f] [--since 10m] project/service",
		Short: "Show the logs of every replica of a service, each line prefixed with its replica",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, s, err := splitService(args[0])
			if err != nil {
				return err
			}
			if asJSON, err := g.json(); err != nil {
				return err
			} else if asJSON {
				return errors.New("ruche logs prints the replicas' own lines: -o json does not apply to it")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			return c.Logs(cmd.Context(), p, s, opts, g.stdout)
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep streaming new lines")
	cmd.Flags().StringVar(&opts.Since, "since", "", "only lines since a duration ago (10m) or an RFC 3339 time")
	cmd.Flags().IntVar(&opts.Tail, "tail", -1, "only the last N lines of each replica")
	return cmd
}

func newEventsCmd(g *globals) *cobra.Command {
	var follow bool
	var since, project string
	cmd := &cobra.Command{
		Use:   "events [-f] [--since 1h] [-p project]",
		Short: "Show what happened: deploys, replica changes, rollbacks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				return c.Events(cmd.Context(), since, project, follow, func(ev client.Event) {
					if asJSON {
						g.printJSON(ev)
						return
					}
					printEvent(g.stdout, ev)
				})
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new events")
	cmd.Flags().StringVar(&since, "since", "", "only events since a duration ago (1h) or an RFC 3339 time")
	cmd.Flags().StringVarP(&project, "project", "p", "", "only events of this project")
	return cmd
}

// printEvent prints one event as a line of fixed-width columns (a table
// that streams): the widest type and action fit ("rollback_started").
func printEvent(w io.Writer, ev client.Event) {
	what := ev.Project
	if ev.Replica != "" {
		what += "/" + ev.Replica
	} else if ev.Service != "" {
		what += "/" + ev.Service
	}
	fmt.Fprintf(w, "%s  %-8s %-16s %-24s %s\n", ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Type, ev.Action, what, ev.Message)
}

func newRmCmd(g *globals) *cobra.Command {
	var volumes bool
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "rm project [--volumes]",
		Short: "Remove a project: its replicas and networks; its named volumes only with --volumes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				resp, err := c.Remove(cmd.Context(), args[0], volumes)
				if err != nil {
					return err
				}
				err = g.show(asJSON, resp, func() {
					for _, ch := range resp.Changes {
						fmt.Fprintf(g.stdout, "  - %s: remove %d replica(s)\n", ch.Service, ch.From)
					}
					if !volumes {
						fmt.Fprintln(g.stdout, "named volumes are kept (use --volumes to delete them)")
					}
				})
				if err != nil || wf.detach {
					return err
				}
				if err := g.wait(cmd.Context(), c, waitSpec{project: args[0], projectGone: true, timeout: wf.timeout}); err != nil {
					return err
				}
				fmt.Fprintf(g.progressOut(), "%s removed\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&volumes, "volumes", false, "also delete the project's named volumes (their data is lost)")
	addWaitFlags(cmd, &wf, 5*time.Minute)
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the platform: managers, store, nodes, totals",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				st, err := c.Status(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(st)
				}
				fmt.Fprintf(g.stdout, "ruche %s, cluster %s\n", st.Version, st.ClusterID)
				printManagers(g.stdout, st.Managers) // manager.go
				g.refreshServers(st.Managers)
				printStore(g.stdout, st.Store)
				switch {
				case st.Networks == "ruche":
					fmt.Fprintf(g.stdout, "networks: ruche's own (private range %s)\n", st.PrivateRange)
				case st.Networks != "":
					fmt.Fprintf(g.stdout, "networks: Docker's, one per project network (%s)\n", st.Networks)
				}
				fmt.Fprintf(g.stdout, "projects: %d, services: %d, replicas: %d/%d ready\n", st.Projects, st.Services, st.Ready, st.Replicas)
				return printNodes(g, st.Nodes)
			})
		},
	}
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
