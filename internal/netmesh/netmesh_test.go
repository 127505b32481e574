package netmesh

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestIfaceName(t *testing.T) {
	a, b := IfaceName("node1"), IfaceName("node2")
	if a == b || len(a) > 15 || !strings.HasPrefix(a, IfacePrefix) {
		t.Errorf("IfaceName: %q and %q: want distinct names of at most 15 bytes starting with %s", a, b, IfacePrefix)
	}
}

// TestKeyKept: the key is made once (mode 0600) and read back after.
func TestKeyKept(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent", "mesh.key")
	k1, err := loadKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi, err)
	}
	k2, err := loadKey(p)
	if err != nil || k2 != k1 {
		t.Fatalf("key read back %v %v, want the same", k2, err)
	}
	os.WriteFile(p, []byte("not a key\n"), 0o600)
	if _, err := loadKey(p); err == nil {
		t.Error("a bad key file was taken")
	}
}

// TestPeerConfig: a peer's allowed addresses (and routes) are its own
// address and its subnets; a change of either or of the endpoint changes
// what Apply compares, the order does not.
func TestPeerConfig(t *testing.T) {
	k, _ := wgtypes.GeneratePrivateKey()
	p := Peer{PublicKey: k.PublicKey().String(), Endpoint: netip.MustParseAddrPort("192.0.2.2:51820"), Addr: netip.MustParseAddr("10.208.0.2"),
		Subnets: []netip.Prefix{netip.MustParsePrefix("10.208.5.0/24"), netip.MustParsePrefix("10.208.3.0/24")}}
	pc := peerConfig(k.PublicKey(), p)
	got := describe(pc)
	if want := "192.0.2.2:51820 10.208.0.2/32 10.208.3.0/24 10.208.5.0/24"; got != want {
		t.Errorf("peer %q, want %q", got, want)
	}
	if pc.PersistentKeepaliveInterval == nil || *pc.PersistentKeepaliveInterval != Keepalive || !pc.ReplaceAllowedIPs {
		t.Errorf("keepalive %v, replace %v", pc.PersistentKeepaliveInterval, pc.ReplaceAllowedIPs)
	}
	p.Subnets[0], p.Subnets[1] = p.Subnets[1], p.Subnets[0]
	if describe(peerConfig(k.PublicKey(), p)) != got {
		t.Error("the order of the subnets changed the peer")
	}
	p.Endpoint = netip.MustParseAddrPort("192.0.2.9:51820")
	if describe(peerConfig(k.PublicKey(), p)) == got {
		t.Error("a new endpoint did not change the peer")
	}
}
