package agent

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/store"
)

// LabelRoutePorts lists, on a container, the bindings the agent published
// for the ingress of other nodes: "<host-ip>:<target>,..." (tcp). The
// status marks those bindings client.PortBinding.Route, from the label and
// not from the agent's current configuration, so an adopted container keeps
// its marks even if the advertise address changed since.
const LabelRoutePorts = "ruche.route-ports"

// routePorts are the ports to publish on the node's advertise address so
// that the proxies of other nodes reach the replica: each route's target
// port, tcp, on an ephemeral host port. None without an advertise address
// (a single `ruche up`: its own proxy reaches the container address) or for
// a service kept private. A port the service already publishes where the
// advertise address reaches it (all addresses, or that one) is left alone:
// the routing table uses the service's own binding, and two ephemeral
// bindings of one port on one address could not be told apart.
func routePorts(t store.TaskRecord, advertise string) []client.PortSpec {
	ip, err := netip.ParseAddr(advertise)
	if err != nil {
		return nil
	}
	if pub := t.Spec.Ruche.Public; pub != nil && !*pub {
		return nil
	}
	var out []client.PortSpec
	for _, r := range t.Spec.Routes {
		if r.Port == 0 || slices.ContainsFunc(out, func(p client.PortSpec) bool { return p.Target == r.Port }) {
			continue
		}
		if slices.ContainsFunc(t.Spec.Ports, func(p client.PortSpec) bool {
			return p.Target == r.Port && (p.Protocol == "" || p.Protocol == "tcp") && reaches(p.HostIP, ip)
		}) {
			continue
		}
		out = append(out, client.PortSpec{Target: r.Port, Protocol: "tcp", HostIP: ip.String()})
	}
	slices.SortFunc(out, func(a, b client.PortSpec) int { return int(a.Target) - int(b.Target) })
	return out
}

// addRoutePorts publishes the route ports of t in spec and labels them.
func addRoutePorts(spec *runtime.ContainerSpec, t store.TaskRecord, advertise string) {
	ps := routePorts(t, advertise)
	if len(ps) == 0 {
		return
	}
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = net.JoinHostPort(p.HostIP, strconv.Itoa(int(p.Target)))
	}
	spec.Ports = append(slices.Clone(spec.Ports), ps...)
	spec.Labels[LabelRoutePorts] = strings.Join(keys, ",")
}

// markRoutePorts marks the bindings the agent published for routes (see
// LabelRoutePorts). A binding the service publishes itself with the same
// address and fixed host port stays unmarked.
func markRoutePorts(labels map[string]string, own []client.PortSpec, bindings []client.PortBinding) []client.PortBinding {
	v := labels[LabelRoutePorts]
	if v == "" || len(bindings) == 0 {
		return bindings
	}
	want := map[string]bool{}
	for _, k := range strings.Split(v, ",") {
		host, port, err := net.SplitHostPort(k)
		if err != nil {
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			host = ip.String()
		}
		want[net.JoinHostPort(host, port)] = true
	}
	out := slices.Clone(bindings)
	for i, b := range out {
		if b.Protocol != "" && b.Protocol != "tcp" {
			continue
		}
		host := b.HostIP
		if ip, err := netip.ParseAddr(host); err == nil {
			host = ip.String()
		}
		if !want[net.JoinHostPort(host, strconv.Itoa(int(b.Target)))] {
			continue
		}
		mine := slices.ContainsFunc(own, func(p client.PortSpec) bool {
			return p.Target == b.Target && p.Published != 0 && p.Published == b.Published &&
				(p.Protocol == "" || p.Protocol == "tcp") && sameHost(p.HostIP, b.HostIP)
		})
		out[i].Route = !mine
	}
	return out
}

func sameHost(a, b string) bool {
	x, errx := netip.ParseAddr(a)
	y, erry := netip.ParseAddr(b)
	if errx != nil || erry != nil {
		return a == b
	}
	return x == y
}

// reaches reports whether a port published on hostIP answers at ip.
func reaches(hostIP string, ip netip.Addr) bool {
	if hostIP == "" {
		return true
	}
	h, err := netip.ParseAddr(hostIP)
	if err != nil {
		return false
	}
	if h.IsUnspecified() {
		return h.Is4() == ip.Unmap().Is4()
	}
	return h.Unmap() == ip.Unmap()
}
