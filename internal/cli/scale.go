package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ruche-platform/ruche/client"
)

// scaleReq is one argument of `ruche scale`: project/service=N.
type scaleReq struct {
	project, service string
	n                int
}

func (r scaleReq) name() string { return r.project + "/" + r.service }

func newScaleCmd(g *globals) *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "scale project/service=N ...",
		Short: "Set the number of replicas of services",
		Long: `Set the number of replicas of services.

Every argument is checked before anything changes: each project and service
must exist, and a service whose replicas publish a fixed host port cannot
get more of them than there are nodes to take them. If one is wrong,
nothing is scaled. Each service is then scaled in its own request.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reqs, err := parseScaleArgs(args)
			if err != nil {
				return err
			}
			return g.withClient(func(c *client.Client, asJSON bool) error {
				if err := checkScale(cmd.Context(), c, reqs); err != nil {
					return err
				}
				for _, r := range reqs {
					ch, err := c.Scale(cmd.Context(), r.project, r.service, r.n)
					if err != nil {
						return err
					}
					// One JSON object per service, as events.
					if err := g.show(asJSON, ch, func() {
						fmt.Fprintf(g.stdout, "%s: replicas %d -> %d\n", r.name(), ch.From, ch.To)
					}); err != nil {
						return err
					}
					if !wf.detach && ch.Revision > 0 {
						if err := g.wait(cmd.Context(), c, waitSpec{project: r.project, rev: ch.Revision, services: []string{r.service}, timeout: wf.timeout}); err != nil {
							return err
						}
					}
				}
				return nil
			})
		},
	}
	addWaitFlags(cmd, &wf, 10*time.Minute)
	return cmd
}

// parseScaleArgs reads project/service=N arguments; a service named twice
// is refused, as either count could be meant.
func parseScaleArgs(args []string) ([]scaleReq, error) {
	var reqs []scaleReq
	seen := map[string]bool{}
	for _, a := range args {
		ps, n, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("%q: expected project/service=N", a)
		}
		p, s, err := splitService(ps)
		if err != nil {
			return nil, err
		}
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 || v > client.MaxReplicas {
			return nil, fmt.Errorf("%q: replicas must be a whole number from 0 to %d", a, client.MaxReplicas)
		}
		r := scaleReq{p, s, v}
		if seen[r.name()] {
			return nil, fmt.Errorf("%s is named twice", r.name())
		}
		seen[r.name()] = true
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// checkScale refuses the whole scale, before any change, if the manager
// would refuse one of its requests for what can be read first: a project
// or service that does not exist, or a fixed host port published by more
// replicas than there are nodes to take them (client.FixedPortProblem, the
// manager's own rule). It reads each project once, and the nodes only if a
// service with a fixed host port changes. Every problem is named, in one
// line.
//
// It is not atomic: the API has no batch scale, so a change made between
// this check and the requests (a service removed, a node drained) can
// still make a later request fail after earlier ones were applied.
func checkScale(ctx context.Context, c *client.Client, reqs []scaleReq) error {
	projects := map[string]*client.Project{} // nil: no such project
	var problems []string
	nodes := -1
	for _, r := range reqs {
		p, read := projects[r.project]
		if !read {
			var err error
			if p, err = c.Project(ctx, r.project); isNotFound(err) {
				p = nil
				problems = append(problems, "no such project: "+r.project)
			} else if err != nil {
				return err
			}
			projects[r.project] = p
		}
		if p == nil {
			continue
		}
		svc := findService(p, r.service)
		if svc == nil {
			problems = append(problems, "no such service: "+r.name())
			continue
		}
		spec := svc.Spec
		if _, fixed := spec.FixedPort(); !fixed || spec.Replicas == r.n {
			continue // nothing to count nodes for, or the manager changes nothing
		}
		spec.Replicas = r.n
		if nodes < 0 {
			var err error
			if nodes, err = takingNodes(ctx, c); err != nil {
				return err
			}
		}
		if msg := client.FixedPortProblem(spec, nodes); msg != "" {
			problems = append(problems, fmt.Sprintf("service %s: %s", r.name(), msg))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("nothing scaled: %s", strings.Join(problems, "; "))
	}
	return nil
}

func isNotFound(err error) bool {
	var ae *client.Error
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

func findService(p *client.Project, name string) *client.Service {
	for i := range p.Services {
		if p.Services[i].Name == name {
			return &p.Services[i]
		}
	}
	return nil
}

// takingNodes counts the nodes that take new replicas.
func takingNodes(ctx context.Context, c *client.Client) (int, error) {
	ns, err := c.Nodes(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, node := range ns {
		if node.TakesReplicas() {
			n++
		}
	}
	return n, nil
}
