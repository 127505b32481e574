package cli

import (
	"fmt"
	"net/netip"

	"github.com/spf13/pflag"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/daemon"
	"github.com/ruche-platform/ruche/internal/netmesh"
	"github.com/ruche-platform/ruche/internal/privnet"
)

// addNetworkFlags adds the replicas' network flags of `ruche up` and
// `ruche agent`; the function returned checks them into nc.
func addNetworkFlags(f *pflag.FlagSet, nc *daemon.NetworksConfig) func() error {
	var privRange string
	f.StringVar(&nc.Mode, "networks", "",
		"the replicas' networks, for the whole cluster: docker (a Docker network per project network) or ruche (ruche's own bridges, addresses and DNS, across nodes over a WireGuard mesh). "+
			"Settled by the cluster's first manager: default ruche when it runs as root with iptables, else docker; the other nodes follow it")
	f.StringVar(&privRange, "private-range", "",
		"with ruche's networks, for a new cluster: its IPv4 range (/23 or larger; default "+privnet.DefaultRange.String()+"): its first /24 for the nodes' mesh addresses, then a /24 per network and node; the other nodes follow it")
	f.StringArrayVar(&nc.DNSUpstreams, "dns-upstream", nil,
		"with ruche's networks: a name server (IP:port) the networks' DNS forwards public names to (repeatable; default: those of /etc/resolv.conf)")
	f.IntVar(&nc.MeshPort, "mesh-port", netmesh.DefaultPort, "with ruche's networks and an advertise address: the WireGuard mesh's UDP port")
	return func() error {
		switch nc.Mode {
		case "", daemon.NetworksRuche:
		case daemon.NetworksDocker:
			if len(nc.DNSUpstreams) > 0 {
				return fmt.Errorf("--dns-upstream is for --networks %s", daemon.NetworksRuche)
			}
			if privRange != "" {
				return fmt.Errorf("--private-range is for --networks %s", daemon.NetworksRuche)
			}
			return nil
		default:
			return fmt.Errorf("--networks %q: want %s or %s", nc.Mode, daemon.NetworksDocker, daemon.NetworksRuche)
		}
		if privRange != "" {
			p, err := agent.ParsePrivateRange(privRange) // as the managers check it
			if err != nil {
				return fmt.Errorf("--private-range: %w", err)
			}
			nc.PrivateRange = p
		}
		for _, u := range nc.DNSUpstreams {
			if _, err := netip.ParseAddrPort(u); err != nil {
				return fmt.Errorf("--dns-upstream %q: want IP:port, such as 192.0.2.53:53", u)
			}
		}
		if nc.MeshPort < 1 || nc.MeshPort > 65535 {
			return fmt.Errorf("--mesh-port %d: want a UDP port, 1 to 65535", nc.MeshPort)
		}
		return nil
	}
}
