package testbed

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPickBlock(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name       string
		host, used []netip.Prefix
		want       string // "" for ErrNoRange
	}{
		{"this machine", pp("192.0.2.0/24", "172.17.0.0/16", "172.31.0.0/16", "192.168.176.0/20", "127.0.0.0/8"), nil, "198.18.0.0/18"},
		{"host route in the first block", pp("198.18.3.0/24"), nil, "198.18.64.0/18"},
		{"host address in the first block", pp("198.18.63.7/32"), nil, "198.18.64.0/18"},
		{"a wide route covers the first half", pp("198.18.0.0/16"), nil, "198.19.0.0/18"},
		{"a used block is skipped", nil, pp("198.18.0.0/18", "198.18.64.0/18"), "198.18.128.0/18"},
		{"everything taken", pp("198.16.0.0/12"), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pickBlock(tt.host, tt.used)
			if tt.want == "" {
				if !errors.Is(err, ErrNoRange) {
					t.Fatalf("got %v, %v; want ErrNoRange", got, err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("got %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	p := plan{Block: netip.MustParsePrefix("198.19.64.0/18")}
	tests := []struct{ name, got, want string }{
		{"link", p.LinkNet().String(), "198.19.64.0/24"},
		{"host", p.HostAddr().String(), "198.19.64.1"},
		{"node1", p.NodeAddr(1).String(), "198.19.64.11"},
		{"bip1", p.BIP(1).String(), "198.19.68.1/24"},
		{"pool1", p.Pool(1).String(), "198.19.70.0/23"},
		{"bip15", p.BIP(MaxNodes).String(), "198.19.124.1/24"},
		{"pool15", p.Pool(MaxNodes).String(), "198.19.126.0/23"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
	// Every node's ranges stay inside the block and apart.
	seen := []netip.Prefix{p.LinkNet()}
	for n := 1; n <= MaxNodes; n++ {
		for _, q := range []netip.Prefix{p.BIP(n).Masked(), p.Pool(n)} {
			if !p.Block.Contains(q.Addr()) {
				t.Errorf("node %d: %s outside %s", n, q, p.Block)
			}
			for _, s := range seen {
				if s.Overlaps(q) {
					t.Errorf("node %d: %s overlaps %s", n, q, s)
				}
			}
			seen = append(seen, q)
		}
	}
}

func TestParseRun(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ruche-tb-abcd-1", "abcd"},
		{"ruche-tb-abcd-12", "abcd"},
		{"ruche-tb-brabcd", "abcd"},
		{"ruche-tb-b0b0-3", "b0b0"},
		{"ruche-tb-abcd", "abcd"},
		{"ruche-tb-abcd-1-plugins", "abcd"},
		{"ruche-tb-ABCD-1", ""},
		{"ruche-tb-xyz0-1", ""},
		{"docker0", ""},
		{"ruche-e2e-abcd-1", ""},
	}
	for _, tt := range tests {
		if got := parseRun(tt.in); got != tt.want {
			t.Errorf("parseRun(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"default", "", false},
		{"0.0.0.0/0", "", false},
		{"192.0.2.0/24", "192.0.2.0/24", true},
		{"192.0.2.255", "192.0.2.255/32", true},
		{"10.1.2.3/8", "10.0.0.0/8", true},
	}
	for _, tt := range tests {
		got, ok := parsePrefix(tt.in)
		if ok != tt.ok || (ok && got.String() != tt.want) {
			t.Errorf("parsePrefix(%q) = %v, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got, want := unescapeMount(`/a\040b/c`), "/a b/c"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := unescapeMount(`/x\04`), `/x\04`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
