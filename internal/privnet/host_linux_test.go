package privnet

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// packet is what the rules look at.
type packet struct {
	in, out  string // interfaces; out empty for the node itself (INPUT)
	src, dst string
	proto    string
	dport    string
	state    string // conntrack: NEW, ESTABLISHED, ...
}

// verdict runs p through a chain of a rule set as iptables does (first
// match; a jump to another chain of the set goes on after it if that
// chain returns) and returns the target, or "RETURN" when no rule
// matches. It knows the options ruche's rules use, and fails the test on
// any other.
func verdict(t *testing.T, rs map[string][][]string, chain string, p packet) string {
	t.Helper()
	for _, r := range rs[chain] {
		if match(t, r, p) {
			target := r[len(r)-1]
			if _, ok := rs[target]; ok {
				if v := verdict(t, rs, target, p); v != "RETURN" {
					return v
				}
				continue
			}
			return target
		}
	}
	return "RETURN"
}

func match(t *testing.T, r []string, p packet) bool {
	t.Helper()
	iface := func(pattern, name string) bool {
		if prefix, ok := strings.CutSuffix(pattern, "+"); ok {
			return name != "" && strings.HasPrefix(name, prefix)
		}
		return pattern == name
	}
	addr := func(pattern, a string) bool {
		pr, err := netip.ParsePrefix(pattern)
		if err != nil {
			pr = netip.PrefixFrom(netip.MustParseAddr(pattern), 32)
		}
		return pr.Contains(netip.MustParseAddr(a))
	}
	is := func(v string) func(string) bool { return func(x string) bool { return x == v } }
	opts := map[string]func(string) bool{
		"-i":        func(v string) bool { return iface(v, p.in) },
		"-o":        func(v string) bool { return iface(v, p.out) },
		"-s":        func(v string) bool { return addr(v, p.src) },
		"-d":        func(v string) bool { return addr(v, p.dst) },
		"-p":        is(p.proto),
		"--dport":   is(p.dport),
		"--ctstate": func(v string) bool { return slices.Contains(strings.Split(v, ","), p.state) },
		"-m":        func(string) bool { return true },
	}
	neg := false
	for i := 0; i < len(r); i += 2 {
		switch r[i] {
		case "!":
			neg, i = true, i-1
			continue
		case "-j":
			return true
		}
		f := opts[r[i]]
		if f == nil {
			t.Fatalf("rule %v: option %s unknown to the test", r, r[i])
		}
		if f(r[i+1]) == neg {
			return false
		}
		neg = false
	}
	return true
}

// ruleset is ruche's chains as EnsureBridge leaves them: each bridge's
// rules inserted at the top (the last bridge first), then the fixed ones.
func ruleset(bridges ...testBridge) map[string][][]string {
	out := map[string][][]string{}
	for _, c := range chains(DefaultRange) {
		out[c.chain] = c.rules
	}
	for _, b := range bridges {
		top := map[string][][]string{}
		for _, r := range bridgeRules(b.name, netip.MustParsePrefix(b.gw), b.internal) {
			top[r.chain] = append(top[r.chain], r.args)
		}
		for c, rs := range top {
			out[c] = append(rs, out[c]...)
		}
	}
	return out
}

type testBridge struct {
	name, gw string
	internal bool
}

// TestFirewall runs packets through the rules of two projects' bridges
// (a, and b which is internal): what a container may reach.
func TestFirewall(t *testing.T) {
	const a, b = BridgePrefix + "a", BridgePrefix + "b"
	rs := ruleset(testBridge{a, "10.208.0.1/24", false}, testBridge{b, "10.208.1.1/24", true})
	tests := []struct {
		name  string
		chain string
		p     packet
		want  string
	}{
		{"a's name server", chainInput, packet{in: a, src: "10.208.0.2", dst: "10.208.0.1", proto: "udp", dport: "53", state: "NEW"}, "ACCEPT"},
		{"a's name server over TCP", chainInput, packet{in: a, src: "10.208.0.2", dst: "10.208.0.1", proto: "tcp", dport: "53", state: "NEW"}, "ACCEPT"},
		{"b's name server from a", chainInput, packet{in: a, src: "10.208.0.2", dst: "10.208.1.1", proto: "udp", dport: "53", state: "NEW"}, "DROP"},
		{"b's name server from a over TCP", chainInput, packet{in: a, src: "10.208.0.2", dst: "10.208.1.1", proto: "tcp", dport: "53", state: "NEW"}, "DROP"},
		{"a DNS server of the node", chainInput, packet{in: a, src: "10.208.0.2", dst: "192.168.1.10", proto: "udp", dport: "53", state: "NEW"}, "DROP"},
		{"ssh on the node", chainInput, packet{in: a, src: "10.208.0.2", dst: "10.208.0.1", proto: "tcp", dport: "22", state: "NEW"}, "DROP"},
		{"an answer of the node", chainInput, packet{in: a, src: "10.208.0.2", dst: "10.208.0.1", proto: "tcp", dport: "40000", state: "ESTABLISHED"}, "ACCEPT"},
		{"the node's own traffic", chainInput, packet{in: "eth0", src: "192.168.1.2", dst: "192.168.1.10", proto: "tcp", dport: "22", state: "NEW"}, "RETURN"},
		{"a to b", chainForward, packet{in: a, out: b, src: "10.208.0.2", dst: "10.208.1.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"b to a", chainForward, packet{in: b, out: a, src: "10.208.1.2", dst: "10.208.0.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"within a", chainForward, packet{in: a, out: a, src: "10.208.0.2", dst: "10.208.0.3", proto: "tcp", dport: "80", state: "NEW"}, "ACCEPT"},
		{"a to the world", chainForward, packet{in: a, out: "eth0", src: "10.208.0.2", dst: "192.0.2.1", proto: "tcp", dport: "443", state: "NEW"}, "ACCEPT"},
		{"internal b to the world", chainForward, packet{in: b, out: "eth0", src: "10.208.1.2", dst: "192.0.2.1", proto: "tcp", dport: "443", state: "NEW"}, "DROP"},
		{"a spoofing b's address", chainForward, packet{in: a, out: "eth0", src: "10.208.1.2", dst: "192.0.2.1", proto: "tcp", dport: "443", state: "NEW"}, "DROP"},
		{"the world to a", chainForward, packet{in: "eth0", out: a, src: "192.0.2.1", dst: "10.208.0.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"a to Docker's default bridge", chainForward, packet{in: a, out: "docker0", src: "10.208.0.2", dst: "172.17.0.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"a to a Docker network", chainForward, packet{in: a, out: "br-0123456789ab", src: "10.208.0.2", dst: "172.18.0.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"a to Swarm's bridge", chainForward, packet{in: a, out: "docker_gwbridge", src: "10.208.0.2", dst: "172.19.0.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"an answer from the world", chainForward, packet{in: "eth0", out: a, src: "192.0.2.1", dst: "10.208.0.2", proto: "tcp", dport: "40000", state: "ESTABLISHED"}, "ACCEPT"},
	}
	for _, tt := range tests {
		if got := verdict(t, rs, tt.chain, tt.p); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestForwardRules: the rules of a published port, as iptables gets them
// (the chains themselves need root: e2e TestPrivateNetworks).
func TestForwardRules(t *testing.T) {
	f := Forward{Proto: "tcp", HostPort: 8080, Dest: netip.MustParseAddrPort("10.208.0.2:80"), Bridge: "ruchbrabc"}
	dnat, accept := forwardRules("c1", f)
	want := "! -i ruchbr+ -p tcp --dport 8080 -m comment --comment ruche:c1 -j DNAT --to-destination 10.208.0.2:80"
	if got := strings.Join(dnat, " "); got != want {
		t.Errorf("dnat:\n got %s\nwant %s", got, want)
	}
	want = "-d 10.208.0.2/32 ! -i ruchbrabc -o ruchbrabc -p tcp --dport 80 -m comment --comment ruche:c1 -j ACCEPT"
	if got := strings.Join(accept, " "); got != want {
		t.Errorf("accept:\n got %s\nwant %s", got, want)
	}
	f.HostIP, f.Proto = netip.MustParseAddr("192.0.2.7"), "udp"
	dnat, _ = forwardRules("c1", f)
	if !slices.Contains(dnat, "192.0.2.7/32") || !slices.Contains(dnat, "udp") {
		t.Errorf("dnat with a host address: %v", dnat)
	}
}

// TestMeshFirewall runs packets between the bridges and the mesh through
// the rules: a network reaches its own subnets on other nodes and nothing
// else there; the other nodes reach its containers from their own
// addresses (their ingress), not from another network's subnet.
func TestMeshFirewall(t *testing.T) {
	const a, b, wg = BridgePrefix + "a", BridgePrefix + "b", MeshPrefix + "x"
	rs := ruleset(testBridge{a, "10.208.1.1/24", false}, testBridge{b, "10.208.2.1/24", true})
	rs[chainMesh] = meshRules(wg, []netip.Addr{netip.MustParseAddr("10.208.0.2")}, []MeshBridge{
		{Bridge: a, Subnet: netip.MustParsePrefix("10.208.1.0/24"), Remote: []netip.Prefix{netip.MustParsePrefix("10.208.5.0/24")}},
		{Bridge: b, Subnet: netip.MustParsePrefix("10.208.2.0/24"), Remote: []netip.Prefix{netip.MustParsePrefix("10.208.6.0/24")}},
	})
	tests := []struct {
		name  string
		chain string
		p     packet
		want  string
	}{
		{"a to its subnet on another node", chainForward, packet{in: a, out: wg, src: "10.208.1.2", dst: "10.208.5.2", proto: "tcp", dport: "80", state: "NEW"}, "ACCEPT"},
		{"a to b's subnet on another node", chainForward, packet{in: a, out: wg, src: "10.208.1.2", dst: "10.208.6.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"a to a subnet it has not", chainForward, packet{in: a, out: wg, src: "10.208.1.2", dst: "10.208.7.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"a to another node's own address", chainForward, packet{in: a, out: wg, src: "10.208.1.2", dst: "10.208.0.2", proto: "tcp", dport: "22", state: "NEW"}, "DROP"},
		{"a spoofing its remote subnet", chainForward, packet{in: a, out: wg, src: "10.208.5.9", dst: "10.208.5.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"a's remote subnet to a", chainForward, packet{in: wg, out: a, src: "10.208.5.2", dst: "10.208.1.2", proto: "tcp", dport: "80", state: "NEW"}, "ACCEPT"},
		{"b's remote subnet to a", chainForward, packet{in: wg, out: a, src: "10.208.6.2", dst: "10.208.1.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"another node's ingress to a", chainForward, packet{in: wg, out: a, src: "10.208.0.2", dst: "10.208.1.2", proto: "tcp", dport: "80", state: "NEW"}, "ACCEPT"},
		{"a's answer to another node's ingress", chainForward, packet{in: a, out: wg, src: "10.208.1.2", dst: "10.208.0.2", proto: "tcp", dport: "40000", state: "ESTABLISHED"}, "ACCEPT"},
		{"internal b to its subnet on another node", chainForward, packet{in: b, out: wg, src: "10.208.2.2", dst: "10.208.6.2", proto: "tcp", dport: "80", state: "NEW"}, "ACCEPT"},
		{"internal b to the world", chainForward, packet{in: b, out: "eth0", src: "10.208.2.2", dst: "192.0.2.1", proto: "tcp", dport: "443", state: "NEW"}, "DROP"},
		{"the mesh to the world", chainForward, packet{in: wg, out: "eth0", src: "10.208.5.2", dst: "192.0.2.1", proto: "tcp", dport: "443", state: "NEW"}, "DROP"},
		{"the world to the mesh", chainForward, packet{in: "eth0", out: wg, src: "192.0.2.1", dst: "10.208.5.2", proto: "tcp", dport: "80", state: "NEW"}, "DROP"},
		{"a to the world still", chainForward, packet{in: a, out: "eth0", src: "10.208.1.2", dst: "192.0.2.1", proto: "tcp", dport: "443", state: "NEW"}, "ACCEPT"},
		{"the mesh to the node", chainInput, packet{in: wg, src: "10.208.5.2", dst: "10.208.0.1", proto: "tcp", dport: "22", state: "NEW"}, "DROP"},
		{"an answer over the mesh to the node", chainInput, packet{in: wg, src: "10.208.5.2", dst: "10.208.0.1", proto: "tcp", dport: "40000", state: "ESTABLISHED"}, "ACCEPT"},
		{"a over the mesh keeps its address", chainNAT, packet{in: a, out: wg, src: "10.208.1.2", dst: "10.208.5.2", proto: "tcp", dport: "80", state: "NEW"}, "RETURN"},
		{"a to the world is masqueraded", chainNAT, packet{in: a, out: "eth0", src: "10.208.1.2", dst: "192.0.2.1", proto: "tcp", dport: "443", state: "NEW"}, "MASQUERADE"},
	}
	for _, tt := range tests {
		if got := verdict(t, rs, tt.chain, tt.p); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
