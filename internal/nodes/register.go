package nodes

import (
	"maps"
	"slices"
	"sort"

	"github.com/ruche-platform/ruche/client"
)

// Register merges what an agent says of its node when it registers (reg)
// into the node's record (old, nil when there is none) and returns the
// record to write. The agent describes the machine (hostname, address,
// capacity, version, its own --label labels); managers own the rest:
// role, availability, status (the node monitor's) and the labels set or
// removed by `ruche node label`, which win over the agent's.
func Register(old *client.Node, reg client.Node) client.Node {
	n := reg
	if n.Status == "" {
		n.Status = client.NodeReady
	}
	if n.Availability == "" {
		n.Availability = client.AvailabilityActive
	}
	if old == nil {
		n.ManagerLabels, n.RemovedLabels = nil, nil
		n.Labels = maps.Clone(reg.Labels)
		return n
	}
	if old.Role != "" {
		n.Role = old.Role
	}
	if old.Availability != "" {
		n.Availability = old.Availability
	}
	if old.Status != "" {
		n.Status = old.Status
	}
	if n.Addr == "" {
		n.Addr = old.Addr
	}
	n.CertSerial = old.CertSerial
	n.ManagerLabels = maps.Clone(old.ManagerLabels)
	n.RemovedLabels = slices.Clone(old.RemovedLabels)
	n.Labels = EffectiveLabels(reg.Labels, n.ManagerLabels, n.RemovedLabels)
	n.Load = nil
	return n
}

// EffectiveLabels are the agent's labels without the ones managers
// removed, with the ones managers set.
func EffectiveLabels(agent, manager map[string]string, removed []string) map[string]string {
	out := map[string]string{}
	for k, v := range agent {
		if !slices.Contains(removed, k) {
			out[k] = v
		}
	}
	maps.Copy(out, manager)
	if len(out) == 0 {
		return nil
	}
	return out
}

// SetLabels applies `ruche node label`: set wins over the agent's labels,
// remove takes a label away even if the agent sets it. A key both set and
// removed is set.
func SetLabels(n *client.Node, set map[string]string, remove []string) {
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if n.ManagerLabels == nil {
		n.ManagerLabels = map[string]string{}
	}
	for _, k := range remove {
		if _, ok := set[k]; ok {
			continue
		}
		delete(n.Labels, k)
		delete(n.ManagerLabels, k)
		if !slices.Contains(n.RemovedLabels, k) {
			n.RemovedLabels = append(n.RemovedLabels, k)
		}
	}
	for k, v := range set {
		n.Labels[k] = v
		n.ManagerLabels[k] = v
		n.RemovedLabels = slices.DeleteFunc(n.RemovedLabels, func(r string) bool { return r == k })
	}
	sort.Strings(n.RemovedLabels)
	if len(n.Labels) == 0 {
		n.Labels = nil
	}
	if len(n.ManagerLabels) == 0 {
		n.ManagerLabels = nil
	}
	if len(n.RemovedLabels) == 0 {
		n.RemovedLabels = nil
	}
}
