package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/netinit"
	"github.com/ruche-platform/ruche/internal/privnet"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/store"
)

// ruche's own networks (Deps.Networks, see internal/privnet): a replica's
// container runs with no engine network, ruche's init in front of its
// command; once it runs, the agent wires it into its project networks'
// bridges, and its names resolve while it is ready.

// privnetSpec turns a container spec made for engine networks into one for
// ruche's: no engine network, addresses reserved (labels), name server,
// and ruche's init as entrypoint. The caller releases the task's
// addresses if the container is not created.
func (s *supervisor) privnetSpec(ctx context.Context, rec store.TaskRecord, spec *runtime.ContainerSpec) error {
	pn := s.a.pn
	ep, cmd, err := s.a.rt.ImageCommand(ctx, spec.Image)
	if errors.Is(err, runtime.ErrNotFound) {
		if err := s.pullMissing(ctx, rec); err != nil {
			return err
		}
		ep, cmd, err = s.a.rt.ImageCommand(ctx, spec.Image)
	}
	if err != nil {
		return err
	}
	argv, err := privnet.Command(spec.Entrypoint, spec.Command, ep, cmd)
	if err != nil {
		return err
	}
	nets := privnetSpecs(rec)
	ifaces, err := pn.Attach(s.id, rec.Project+".internal", nets)
	if err != nil {
		return err
	}
	spec.Entrypoint, spec.Command = argv, nil
	spec.Mounts = append(spec.Mounts, runtime.Mount{Type: client.MountBind, Source: s.a.initBin, Target: netinit.InitPath, ReadOnly: true})
	// Docker cannot publish the ports of a container without a network:
	// ruche publishes them once it is wired (wire).
	spec.NoNetwork, spec.Networks, spec.Ports = true, nil, nil
	// DESIGN.md's private names: the replica's own, and its address on
	// its first network (where its default route is).
	spec.Env = append(spec.Env,
		"RUCHE_PRIVATE_IP="+ifaces[0].Addr.Addr().String(),
		fmt.Sprintf("RUCHE_PRIVATE_HOSTNAME=%d.%s.%s.internal", rec.Slot, rec.Service, rec.Project))
	spec.DNS = []string{ifaces[0].Gateway.String()}
	spec.DNSSearch = []string{rec.Project + ".internal"}
	maps.Copy(spec.Labels, privnet.Labels(nets, ifaces))
	return nil
}

// privnetSpecs are the networks of a task, by engine name, in
// taskNetworks' order (the first has the default route).
func privnetSpecs(rec store.TaskRecord) []privnet.NetSpec {
	var out []privnet.NetSpec
	for _, n := range taskNetworks(rec) {
		out = append(out, privnet.NetSpec{Name: NetworkName(rec.Project, n), Project: rec.Project, Internal: rec.Networks[n].Internal})
	}
	return out
}

// wire puts a running container into its networks (once: a wired
// container is left alone).
func (s *supervisor) wire(rec store.TaskRecord, c runtime.Container) error {
	pn := s.a.pn
	if c.Pid == 0 {
		return fmt.Errorf("wire %s: not running", c.Name)
	}
	if c.Pid == s.wiredPid {
		return nil // this run is wired: nothing to ask the kernel each time it is observed
	}
	// Ifaces also ensures the networks (bridge, its rules, name server):
	// after a restart of ruche, those of adopted containers come back here.
	ifaces, err := pn.Ifaces(privnetSpecs(rec), c.Labels)
	if err != nil {
		return fmt.Errorf("wire %s: %w", c.Name, err)
	}
	if !pn.Wired(c.ID, c.Pid) {
		if err := pn.Wire(c.ID, c.Pid, ifaces); err != nil {
			return fmt.Errorf("wire %s: %w", c.Name, err)
		}
	}
	if _, err := pn.OpenPorts(c.ID, ifaces[0].Addr.Addr(), ifaces[0].Bridge, rec.Spec.Ports); err != nil {
		return fmt.Errorf("publish the ports of %s: %w", c.Name, err)
	}
	s.wiredPid = c.Pid
	return nil
}

// publish makes a ready replica's names resolve (the same names Docker's
// networks give it as aliases), and hides those of one that is not.
func (s *supervisor) publish(rec store.TaskRecord, c runtime.Container, ready bool) {
	pn := s.a.pn
	if !ready {
		pn.Unpublish(c.ID)
		return
	}
	if pn.Published(c.ID) {
		return
	}
	pn.Publish(c.ID, c.Labels, NetworkAliases(rec))
}

// adoptAddresses records the addresses of this node's containers before
// any replica gets one, so that none is given twice after a restart.
func (a *Agent) adoptAddresses(ctx context.Context) error {
	cs, err := a.rt.ListSummaries(ctx, a.nodeLabels())
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs {
		a.pn.Adopt(c.Labels[runtime.LabelTask], c.Labels)
	}
	return nil
}

// removePrivnets removes the networks of a project (or, project empty,
// of every project not in busy) that no container uses any more.
func (a *Agent) removePrivnets(project string, busy map[string]bool) error {
	for _, n := range a.pn.Unused(project) {
		if busy[n.Project] {
			continue
		}
		name := n.Name
		if _, err := a.pn.Remove(name); err != nil {
			return err
		}
		a.log.Info("removed an unused private network", "network", name)
	}
	return nil
}

// createPrivnet creates the container of a replica on ruche's networks.
func (s *supervisor) createPrivnet(ctx context.Context, rec store.TaskRecord, spec runtime.ContainerSpec) error {
	if err := s.privnetSpec(ctx, rec, &spec); err != nil {
		return err
	}
	id, err := s.a.rt.Create(ctx, spec)
	if err != nil {
		s.a.pn.Release(s.id)
		return err
	}
	s.cid = id
	s.runSeen, s.exitSeen = time.Time{}, time.Time{}
	return nil
}

// startWired wires a container just started. If it cannot be, the
// container is stopped (its init would wait for a network that never
// comes) and the start counts as failed.
func (s *supervisor) startWired(ctx context.Context, rec store.TaskRecord) error {
	c, err := s.a.rt.Inspect(ctx, s.cid)
	if err == nil {
		err = s.wire(rec, c)
	}
	if err != nil {
		if serr := s.a.rt.Stop(ctx, s.cid, "KILL", 0); serr != nil {
			s.log.Warn("stopping an unwired container failed", "err", serr)
		}
		return err
	}
	return nil
}

// forgetAddresses drops the names, ports and addresses of the task's
// container, which is gone.
func (s *supervisor) forgetAddresses() {
	if s.a.pn != nil {
		s.stopped(s.cid)
		s.a.pn.Release(s.id)
	}
}

// stopped drops the names and published ports of a container that does
// not run.
func (s *supervisor) stopped(containerID string) {
	s.wiredPid = 0
	s.a.pn.Unpublish(containerID)
	if err := s.a.pn.ClosePorts(containerID); err != nil {
		s.log.Warn("unpublishing the ports failed", "err", err)
	}
}
