package testbed

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
)

// The testbed's addresses come from 198.18.0.0/15 (RFC 2544, reserved for
// benchmarking, never routed on the internet), cut into eight /18 blocks.
// A run takes one block that overlaps nothing the host has:
//
//	block /24 #0           the link network: bridge .1 (host, optional), node n = .10+n
//	block /24 #4n          node n's docker0 (--bip .1/24)
//	block /23 at #4n+2     node n's pool for user networks (--default-address-pool, /27 each)
//
// so a block holds up to MaxNodes nodes.
var testRange = netip.MustParsePrefix("198.18.0.0/15")

// MaxNodes is the most nodes one testbed has.
const MaxNodes = 15

const blockBits = 18

// plan is the address plan of one run: one /18 block.
type plan struct {
	Block netip.Prefix `json:"block"`
}

// candidates are the /18 blocks of the test range, in order.
func candidates() []netip.Prefix {
	var out []netip.Prefix
	a := testRange.Addr().As4()
	for k := 0; k < 8; k++ {
		b := a
		b[1] += byte(k / 4)
		b[2] = byte(k%4) * 64
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(b), blockBits))
	}
	return out
}

// pickBlock returns the first candidate block that overlaps none of the
// host's prefixes (routes and addresses) nor a block in use.
func pickBlock(host []netip.Prefix, used []netip.Prefix) (netip.Prefix, error) {
next:
	for _, c := range candidates() {
		for _, p := range host {
			if p.Overlaps(c) {
				continue next
			}
		}
		for _, p := range used {
			if p.Overlaps(c) {
				continue next
			}
		}
		return c, nil
	}
	return netip.Prefix{}, fmt.Errorf("%w: every block of %s overlaps a host route or address, or another run", ErrNoRange, testRange)
}

// nth24 is the i-th /24 of the block.
func (p plan) nth24(i int) netip.Prefix {
	a := p.Block.Addr().As4()
	a[2] += byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

func hostIn(p netip.Prefix, host byte) netip.Addr {
	a := p.Addr().As4()
	a[3] = host
	return netip.AddrFrom4(a)
}

// LinkNet is the network of the bridge.
func (p plan) LinkNet() netip.Prefix { return p.nth24(0) }

// HostAddr is the host's address on the bridge (when it has one).
func (p plan) HostAddr() netip.Addr { return hostIn(p.nth24(0), 1) }

// NodeAddr is node n's address (n from 1).
func (p plan) NodeAddr(n int) netip.Addr { return hostIn(p.nth24(0), byte(10+n)) }

// BIP is node n's docker0 address and prefix, as --bip wants it.
func (p plan) BIP(n int) netip.Prefix {
	return netip.PrefixFrom(hostIn(p.nth24(4*n), 1), 24)
}

// Pool is node n's --default-address-pool base.
func (p plan) Pool(n int) netip.Prefix {
	return netip.PrefixFrom(p.nth24(4*n+2).Addr(), 23)
}

// hostPrefixes reads every IPv4 address and route the host has (all
// routing tables; default routes left out, they overlap everything).
func hostPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	rb, err := exec.Command("ip", "-j", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return nil, fmt.Errorf("read host routes: %w", err)
	}
	var routes []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(rb, &routes); err != nil {
		return nil, fmt.Errorf("read host routes: %w", err)
	}
	for _, r := range routes {
		if p, ok := parsePrefix(r.Dst); ok {
			out = append(out, p)
		}
	}
	ab, err := exec.Command("ip", "-j", "-4", "addr").Output()
	if err != nil {
		return nil, fmt.Errorf("read host addresses: %w", err)
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			Prefixlen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(ab, &links); err != nil {
		return nil, fmt.Errorf("read host addresses: %w", err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if ip, err := netip.ParseAddr(a.Local); err == nil {
				out = append(out, netip.PrefixFrom(ip, a.Prefixlen).Masked())
			}
		}
	}
	return out, nil
}

// parsePrefix reads a route destination ("10.0.0.0/8", "10.1.2.3",
// "default"); default routes are left out.
func parsePrefix(s string) (netip.Prefix, bool) {
	if s == "" || s == "default" {
		return netip.Prefix{}, false
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Bits() == 0 {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return netip.PrefixFrom(a, 32), true
	}
	return netip.Prefix{}, false
}
