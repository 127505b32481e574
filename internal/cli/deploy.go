package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/compose"
)

func newDeployCmd(g *globals) *cobra.Command {
	var (
		files   []string
		project string
		dryRun  bool
		wf      waitFlags
	)
	cmd := &cobra.Command{
		Use:   "deploy -f compose.yml [-p project]",
		Short: "Deploy a compose file, show what changes, and wait until it converged",
		Long: `Deploy validates the whole compose file first, shows what will change, applies it
and follows each service until the stack has converged (exit 0) or failed (exit 1).
--dry-run stops after showing the changes and where each new replica
would go, and why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if len(files) == 0 {
				files = []string{"compose.yml"}
			}
			spec, err := compose.Load(cmd.Context(), compose.Options{Files: files, ProjectName: project,
				Warn: func(p compose.Problem) { fmt.Fprintln(g.stderr, "warning: "+p.String()) }})
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			resp, err := c.Deploy(cmd.Context(), spec, dryRun)
			if err != nil {
				return err
			}
			if err := g.show(asJSON, resp, func() { printChanges(g, resp) }); err != nil {
				return err
			}
			if dryRun || wf.detach || resp.Revision == 0 {
				return nil
			}
			w := waitSpec{project: spec.Name, rev: resp.Revision, timeout: wf.timeout}
			for _, ch := range resp.Changes {
				switch ch.Kind {
				case client.ChangeRemove:
					w.gone = append(w.gone, ch.Service)
				case client.ChangeCreate, client.ChangeUpdate, client.ChangeScale, client.ChangeRoutes:
					w.services = append(w.services, ch.Service)
				}
			}
			if err := g.wait(cmd.Context(), c, w); err != nil {
				return err
			}
			fmt.Fprintf(g.progressOut(), "%s converged\n", spec.Name)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "compose file (repeat to merge; default compose.yml)")
	cmd.Flags().StringVarP(&project, "project", "p", "", "project name (default: the file's name: key, else its directory)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and show the changes, apply nothing")
	addWaitFlags(cmd, &wf, 10*time.Minute)
	return cmd
}

func printChanges(g *globals, resp *client.DeployResponse) {
	verb := "deploying"
	if resp.DryRun {
		verb = "would deploy (dry run)"
	}
	fmt.Fprintf(g.stdout, "%s %s:\n", verb, resp.Project)
	for _, c := range resp.Changes {
		switch c.Kind {
		case client.ChangeCreate:
			fmt.Fprintf(g.stdout, "  + %s: create, %d replica(s)\n", c.Service, c.To)
		case client.ChangeRemove:
			fmt.Fprintf(g.stdout, "  - %s: remove %d replica(s)\n", c.Service, c.From)
		case client.ChangeUpdate:
			scale := ""
			if c.From != c.To {
				scale = fmt.Sprintf(", replicas %d -> %d", c.From, c.To)
			}
			fmt.Fprintf(g.stdout, "  ~ %s: update %s%s\n", c.Service, strings.Join(c.Fields, ", "), scale)
		case client.ChangeScale:
			fmt.Fprintf(g.stdout, "  ~ %s: scale %d -> %d\n", c.Service, c.From, c.To)
		case client.ChangeRoutes:
			fmt.Fprintf(g.stdout, "  ~ %s: routes\n", c.Service)
		default:
			fmt.Fprintf(g.stdout, "  = %s: unchanged\n", c.Service)
		}
	}
	if !resp.DryRun && resp.Revision == 0 {
		fmt.Fprintln(g.stdout, "nothing to do")
	}
	printPlacements(g, resp.Placements)
}

// printPlacements shows where a dry run would place each new replica:
// "  web.1 → node-b (lowest score of 3 eligible nodes (...))", or why no
// node can take it.
func printPlacements(g *globals, pls []client.ReplicaPlacement) {
	if len(pls) == 0 {
		return
	}
	fmt.Fprintln(g.stdout, "placements (on the nodes of the moment):")
	for _, p := range pls {
		name := fmt.Sprintf("%s.%d", p.Service, p.Slot)
		if p.Node == "" {
			fmt.Fprintf(g.stdout, "  %s → no node: %s\n", name, p.Error)
			continue
		}
		node := p.Node
		if p.NodeName != "" && p.NodeName != p.Node {
			node += " [" + p.NodeName + "]"
		}
		fmt.Fprintf(g.stdout, "  %s → %s (%s)\n", name, node, p.Why)
	}
}
