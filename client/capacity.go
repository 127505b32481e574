package client

import "fmt"

// TakesReplicas reports whether the scheduler may place new replicas on
// the node: it is neither down nor drained.
func (n Node) TakesReplicas() bool {
	return n.Status != NodeDown && n.Availability != AvailabilityDrain
}

// FixedPortProblem says why spec's replicas cannot all run when each
// publishes a fixed host port and nodes nodes take replicas: a host port is
// used once per node, so there can be no more replicas than nodes, and with
// order start-first not as many (the new replica needs the port while the
// old one still holds it). It returns "" when they fit, when no port is
// fixed, or when nodes is 0 (no node known yet). The manager refuses a
// deploy or a scale with this message; the CLI checks it before a scale.
func FixedPortProblem(spec ServiceSpec, nodes int) string {
	fixed, ok := spec.FixedPort()
	if !ok || nodes == 0 {
		return ""
	}
	proto := fixed.Protocol
	if proto == "" {
		proto = "tcp"
	}
	port := fmt.Sprintf("%d/%s", fixed.Published, proto)
	there := fmt.Sprintf("are %d nodes", nodes)
	if nodes == 1 {
		there = "is 1 node"
	}
	switch {
	case spec.Replicas > nodes:
		return fmt.Sprintf("%d replicas each publish host port %s, but there %s; a host port can be used once per node (publish an ephemeral port, e.g. \"%d\", or lower replicas)",
			spec.Replicas, port, there, fixed.Target)
	case spec.Replicas == nodes && (spec.UpdateConfig.Order == OrderStartFirst || spec.RollbackConfig.Order == OrderStartFirst):
		return fmt.Sprintf("order start-first needs host port %s free for the new replica while the old one still holds it, and there %s; use stop-first",
			port, there)
	}
	return ""
}

// FixedPort returns the first port the service publishes on a fixed host
// port, if any.
func (s ServiceSpec) FixedPort() (PortSpec, bool) {
	for _, p := range s.Ports {
		if p.Published != 0 {
			return p, true
		}
	}
	return PortSpec{}, false
}
