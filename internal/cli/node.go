package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/client"
)

// watchInterval is how often `ruche node ls -w` refreshes.
const watchInterval = 2 * time.Second

func newNodeCmd(g *globals) *cobra.Command {
	node := &cobra.Command{Use: "node", Short: "Manage nodes: list, drain, activate, remove, label"}
	node.AddCommand(newNodeLsCmd(g), newNodeAvailabilityCmd(g, "drain"), newNodeAvailabilityCmd(g, "activate"),
		newNodeRmCmd(g), newNodeLabelCmd(g))
	return node
}

func newNodeLsCmd(g *globals) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List nodes: status, availability, labels, capacity, live load, replicas",
		Long: `ls lists the nodes. CPU is the cores in use of the cores the node has, MEM the memory
in use of its total, LOAD1 the one-minute load average, from the node's heartbeats ("-" when
the manager has no recent heartbeat of it). -w refreshes every 2s until interrupted; with
-o json it prints one JSON array per refresh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				show := func(ctx context.Context, clear bool) error {
					nodes, err := c.Nodes(ctx)
					if err != nil {
						return err
					}
					if asJSON {
						if watch {
							return printJSONLine(g.stdout, nodes)
						}
						return g.printJSON(nodes)
					}
					if clear {
						fmt.Fprint(g.stdout, "\033[H\033[2J")
						fmt.Fprintf(g.stdout, "every %s: ruche node ls    %s\n\n", watchInterval, time.Now().Format(time.TimeOnly))
					}
					return printNodes(g, nodes)
				}
				if !watch {
					return show(cmd.Context(), false)
				}
				return every(cmd.Context(), watchInterval, func(ctx context.Context) error {
					return show(ctx, isTerminal(g.stdout))
				})
			})
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "refresh every 2s until interrupted")
	return cmd
}

// every runs fn now and then every d until ctx ends (then it returns nil).
func every(ctx context.Context, d time.Duration, fn func(context.Context) error) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func printJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func printNodes(g *globals, nodes []client.Node) error {
	tw := g.table()
	fmt.Fprintln(tw, "NODE\tHOSTNAME\tSTATUS\tAVAILABILITY\tCPU\tMEM\tLOAD1\tREPLICAS\tLABELS")
	for _, n := range nodes {
		cpu, mem, load := nodeLoad(n)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.ID, n.Hostname, orDash(n.Status), orDash(n.Availability),
			cpu, mem, load, n.Replicas, labelList(n.Labels))
	}
	return tw.Flush()
}

// nodeLoad formats a node's live load against its capacity: "0.4/2",
// "1.2 GiB/7.8 GiB", "0.52"; capacity alone when there is no load.
func nodeLoad(n client.Node) (cpu, mem, load string) {
	capCPU, capMem := fmt.Sprintf("%g", n.Capacity.CPUs), bytesHuman(n.Capacity.Memory)
	if n.Load == nil {
		return "-/" + capCPU, "-/" + capMem, "-"
	}
	return fmt.Sprintf("%.1f/%s", n.Load.CPU, capCPU), bytesHuman(n.Load.Memory) + "/" + capMem, fmt.Sprintf("%.2f", n.Load.Load1)
}

func labelList(labels map[string]string) string {
	out := make([]string, 0, len(labels))
	for k, v := range labels {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newNodeAvailabilityCmd(g *globals, verb string) *cobra.Command {
	short := "Drain a node: its replicas move to other nodes (start-first), it takes no new ones"
	if verb == "activate" {
		short = "Make a drained node take replicas again (nothing moves back: see ruche rebalance)"
	}
	return &cobra.Command{
		Use:   verb + " NODE",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				var n *client.Node
				var err error
				if verb == "drain" {
					n, err = c.DrainNode(cmd.Context(), args[0])
				} else {
					n, err = c.ActivateNode(cmd.Context(), args[0])
				}
				if err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(n)
				}
				fmt.Fprintf(g.stdout, "%s: availability %s\n", n.ID, n.Availability)
				if verb == "drain" && n.Replicas > 0 {
					fmt.Fprintf(g.stdout, "%d replicas move to other nodes; `ruche ps` shows them (replicas with a named volume stay: ruche rebalance PROJECT/SERVICE --force)\n", n.Replicas)
				}
				return nil
			})
		},
	}
}

func newNodeRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm NODE",
		Short: "Remove a node: its certificate is refused from then on",
		Long: `rm deletes the node's record; its certificate is refused from then on (it must join again
with a new token). It is refused while replicas are assigned to the node: drain it first, or
--force removes it anyway and its replicas are placed elsewhere. Nothing is removed on the
machine itself.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(func(c *client.Client, asJSON bool) error {
				resp, err := c.RemoveNode(cmd.Context(), args[0], force)
				if err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(resp)
				}
				fmt.Fprintf(g.stdout, "%s removed\n", resp.Node)
				if len(resp.Replicas) > 0 {
					fmt.Fprintf(g.stdout, "placed elsewhere: %s\n", strings.Join(resp.Replicas, ", "))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove the node even if replicas are assigned to it (they are placed elsewhere)")
	return cmd
}

// parseLabelArgs reads "k=v" (set) and "k-" (remove) arguments.
func parseLabelArgs(args []string) (client.NodeLabelRequest, error) {
	var req client.NodeLabelRequest
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			if k == "" {
				return req, fmt.Errorf("%q: expected key=value or key-", a)
			}
			if req.Set == nil {
				req.Set = map[string]string{}
			}
			req.Set[k] = v
			continue
		}
		if k, ok := strings.CutSuffix(a, "-"); ok && k != "" {
			req.Remove = append(req.Remove, k)
			continue
		}
		return req, fmt.Errorf("%q: expected key=value or key-", a)
	}
	return req, nil
}

func newNodeLabelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "label NODE key=value... key-...",
		Short: "Set (k=v) or remove (k-) node labels; they win over the agent's --label",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := parseLabelArgs(args[1:])
			if err != nil {
				return err
			}
			return g.withClient(func(c *client.Client, asJSON bool) error {
				n, err := c.LabelNode(cmd.Context(), args[0], req)
				if err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(n)
				}
				fmt.Fprintf(g.stdout, "%s: labels %s\n", n.ID, orDash(labelList(n.Labels)))
				return nil
			})
		},
	}
}

// parseRebalanceTarget reads "", "project" or "project/service".
func parseRebalanceTarget(args []string) (project, service string, err error) {
	if len(args) == 0 {
		return "", "", nil
	}
	p, s, ok := strings.Cut(args[0], "/")
	if p == "" || (ok && (s == "" || strings.Contains(s, "/"))) {
		return "", "", fmt.Errorf("%q: expected project or project/service", args[0])
	}
	return p, s, nil
}

func newRebalanceCmd(g *globals) *cobra.Command {
	var force, dryRun bool
	cmd := &cobra.Command{
		Use:   "rebalance [project[/service]]",
		Short: "Move running replicas where they spread better (the only command that moves them)",
		Long: `rebalance evens out running replicas: for each service, a replica on the node holding the
most of its replicas moves when the scheduler would put it on a node with at least two fewer
(or one fewer, if that node also runs at least two fewer replicas in all). Moves are made by the
controller start-first (the new replica is ready before the old one stops), one at a time per
service. Replicas with a named volume are never moved, unless --force names their service: then
they move too (also off a down or drained node), and start with an empty volume on their new
node; the old volume stays where it is.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, s, err := parseRebalanceTarget(args)
			if err != nil {
				return err
			}
			if force && s == "" {
				return errors.New("--force moves replicas away from their volume's data: name one service (project/service)")
			}
			return g.withClient(func(c *client.Client, asJSON bool) error {
				resp, err := c.Rebalance(cmd.Context(), client.RebalanceRequest{Project: p, Service: s, Force: force, DryRun: dryRun})
				if err != nil {
					return err
				}
				if asJSON {
					return g.printJSON(resp)
				}
				if len(resp.Moves) == 0 {
					fmt.Fprintln(g.stdout, "nothing to move: replicas are spread as well as rebalance can do")
					return nil
				}
				verb := "moving"
				if dryRun {
					verb = "would move"
				}
				tw := g.table()
				fmt.Fprintln(tw, "REPLICA\tFROM\tWHY")
				for _, m := range resp.Moves {
					fmt.Fprintf(tw, "%s/%s\t%s\t%s\n", m.Project, m.Name, m.From, m.Reason)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s %d replicas, start-first, one at a time per service; `ruche ps` and `ruche events` follow them\n", verb, len(resp.Moves))
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "also move replicas bound to their node by a named volume (their data stays behind)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would move, move nothing")
	return cmd
}
