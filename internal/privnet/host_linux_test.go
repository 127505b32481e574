package privnet

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

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
