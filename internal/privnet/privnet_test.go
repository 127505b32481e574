package privnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/netinit"
)

// fakeHost records what the manager asks of the machine.
type fakeHost struct {
	mu      sync.Mutex
	taken   []netip.Prefix
	bridges map[string]netip.Prefix // name -> gateway address
	wired   map[string][]Iface      // host prefix -> interfaces
	fail    error                   // returned by EnsureBridge
	delFail error                   // returned by DeleteBridge
	ensured map[string]int          // EnsureBridge calls by bridge
	intern  map[string]bool         // the internal argument of the last EnsureBridge
	closed  []bool                  // Close's teardown arguments
	fwd     map[string][]Forward    // by owner
	mesh    [][]string              // the rules of the last SetMesh
}

func newFakeHost(taken ...string) *fakeHost {
	h := &fakeHost{bridges: map[string]netip.Prefix{}, wired: map[string][]Iface{}, fwd: map[string][]Forward{}, ensured: map[string]int{}, intern: map[string]bool{}}
	for _, t := range taken {
		h.taken = append(h.taken, netip.MustParsePrefix(t))
	}
	return h
}

func (h *fakeHost) Taken() ([]netip.Prefix, error) { return slices.Clone(h.taken), nil }

func (h *fakeHost) EnsureBridge(name string, addr netip.Prefix, internal bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return h.fail
	}
	h.bridges[name] = addr
	h.ensured[name]++
	h.intern[name] = internal
	return nil
}

func (h *fakeHost) DeleteBridge(name string, subnet netip.Prefix) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.delFail != nil {
		return h.delFail
	}
	delete(h.bridges, name)
	return nil
}

func (h *fakeHost) Wire(pid int, hostPrefix string, ifaces []Iface) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.wired[hostPrefix]; ok {
		return errors.New("wired twice")
	}
	h.wired[hostPrefix] = ifaces
	return nil
}

func (h *fakeHost) Wired(hostPrefix string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.wired[hostPrefix]
	return ok
}

func (h *fakeHost) AddForward(owner string, f Forward) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fwd[owner] = append(h.fwd[owner], f)
	return nil
}

func (h *fakeHost) RemoveForwards(owner string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.fwd, owner)
	return nil
}

func (h *fakeHost) BridgeAddr(name string) (netip.Prefix, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.bridges[name]
	if !ok {
		return netip.Prefix{}, fmt.Errorf("no bridge %s", name)
	}
	return a, nil
}

func (h *fakeHost) SetMesh(rules [][]string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mesh = rules
	return nil
}

func (h *fakeHost) Close(teardown bool) error {
	h.closed = append(h.closed, teardown)
	return nil
}

// fakeDNS keeps each network's lookup function, by address.
type fakeDNS struct {
	mu      sync.Mutex
	lookups map[string]func(string) []netip.Addr
	domains map[string]string
	closed  int
}

func (d *fakeDNS) start(addr, domain string, lookup func(string) []netip.Addr) (interface{ Close() error }, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups[addr], d.domains[addr] = lookup, domain
	return closer{d}, nil
}

type closer struct{ d *fakeDNS }

func (c closer) Close() error { c.d.closed++; return nil }

func newManager(t *testing.T, h *fakeHost, dir, rng string) (*Manager, *fakeDNS) {
	t.Helper()
	d := &fakeDNS{lookups: map[string]func(string) []netip.Addr{}, domains: map[string]string{}}
	m, err := New(Config{Range: netip.MustParsePrefix(rng), StateDir: dir, Host: h, DNS: d.start})
	if err != nil {
		t.Fatal(err)
	}
	return m, d
}

func spec(name string) NetSpec { return NetSpec{Name: name, Project: strings.Split(name, "-")[1]} }

func TestAttachAddresses(t *testing.T) {
	h := newFakeHost("10.208.0.0/24") // a route of the machine inside the range
	m, dns := newManager(t, h, t.TempDir(), "10.208.0.0/16")
	ifs, err := m.Attach("t1", "shop.internal", []NetSpec{spec("ruche-shop-front"), spec("ruche-shop-back")})
	if err != nil {
		t.Fatal(err)
	}
	want := []Iface{
		{Bridge: BridgeName("ruche-shop-front"), Name: "eth0", Addr: netip.MustParsePrefix("10.208.1.2/24"), Gateway: netip.MustParseAddr("10.208.1.1")},
		{Bridge: BridgeName("ruche-shop-back"), Name: "eth1", Addr: netip.MustParsePrefix("10.208.2.2/24")},
	}
	if !slices.Equal(ifs, want) {
		t.Fatalf("got %+v\nwant %+v (the machine's 10.208.0.0/24 skipped)", ifs, want)
	}
	if got := h.bridges[BridgeName("ruche-shop-front")]; got != netip.MustParsePrefix("10.208.1.1/24") {
		t.Errorf("bridge address %s, want the gateway 10.208.1.1/24", got)
	}
	if dns.domains["10.208.1.1:53"] != "shop.internal" || dns.domains["10.208.2.1:53"] != "shop.internal" {
		t.Errorf("name servers: %v, want one per gateway for shop.internal", dns.domains)
	}
	ifs2, err := m.Attach("t2", "shop.internal", []NetSpec{spec("ruche-shop-front")})
	if err != nil || ifs2[0].Addr.Addr() != netip.MustParseAddr("10.208.1.3") {
		t.Fatalf("second container: %+v, %v; want 10.208.1.3", ifs2, err)
	}
	m.Release("t1")
	ifs3, err := m.Attach("t3", "shop.internal", []NetSpec{spec("ruche-shop-front")})
	if err != nil || ifs3[0].Addr.Addr() != netip.MustParseAddr("10.208.1.2") {
		t.Fatalf("after a release: %+v, %v; want the freed 10.208.1.2", ifs3, err)
	}
}

// TestStateKeptAndAdopted: a restarted manager gives networks the subnets
// they had, and addresses taken by existing containers (their labels) are
// not given again.
func TestStateKeptAndAdopted(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	m, _ := newManager(t, h, dir, "10.208.0.0/16")
	nets := []NetSpec{spec("ruche-a-default")}
	m.Attach("x", "a.internal", []NetSpec{spec("ruche-b-default")}) // b takes 10.208.0.0/24
	ifs, err := m.Attach("t1", "a.internal", nets)
	if err != nil {
		t.Fatal(err)
	}
	labels := Labels([]NetSpec{spec("ruche-a-default")}, ifs)
	if labels[LabelAddrPrefix+"ruche-a-default"] != "10.208.1.2" {
		t.Fatalf("labels %v", labels)
	}
	m.Close()

	m2, _ := newManager(t, newFakeHost(), dir, "10.208.0.0/16")
	m2.Adopt("t1", labels)
	m2.Adopt("t9", map[string]string{LabelAddrPrefix + "ruche-a-default": "192.0.2.1", LabelAddrPrefix + "nope": "10.208.1.9"}) // ignored
	ifs2, err := m2.Attach("t2", "a.internal", nets)
	if err != nil {
		t.Fatal(err)
	}
	if ifs2[0].Addr != netip.MustParsePrefix("10.208.1.3/24") {
		t.Errorf("after a restart: %s, want 10.208.1.3/24 (same subnet, .2 adopted)", ifs2[0].Addr)
	}
	got, err := m2.Ifaces(nets, labels)
	if err != nil || !slices.Equal(got, ifs) {
		t.Errorf("Ifaces from labels: %+v, %v; want %+v", got, err, ifs)
	}
	if _, err := m2.Ifaces(nets, map[string]string{}); err == nil {
		t.Error("Ifaces without a label: no error")
	}
}

func TestAttachFailureReleases(t *testing.T) {
	h := newFakeHost()
	m, _ := newManager(t, h, t.TempDir(), "10.208.0.0/24") // room for one network
	if _, err := m.Attach("t1", "a.internal", []NetSpec{spec("ruche-a-one"), spec("ruche-a-two")}); err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("err = %v, want the range full", err)
	}
	ifs, err := m.Attach("t2", "a.internal", []NetSpec{spec("ruche-a-one")})
	if err != nil || ifs[0].Addr.Addr() != netip.MustParseAddr("10.208.0.2") {
		t.Errorf("got %+v, %v: the failed attach kept its address on the first network", ifs, err)
	}
}

func TestRangeChecks(t *testing.T) {
	if _, err := New(Config{Range: netip.MustParsePrefix("10.0.0.0/16"), StateDir: t.TempDir(), Host: newFakeHost("10.0.0.0/8")}); err == nil {
		t.Error("a range inside a route of the machine: no error")
	}
	if _, err := New(Config{Range: netip.MustParsePrefix("10.0.0.0/25"), StateDir: t.TempDir(), Host: newFakeHost()}); err == nil {
		t.Error("a range smaller than one subnet: no error")
	}
	m, _ := newManager(t, newFakeHost("10.208.0.0/16"), t.TempDir(), "10.208.0.0/16")
	if _, err := m.Attach("t", "a.internal", []NetSpec{spec("ruche-a-default")}); err == nil {
		t.Error("every subnet overlapping the machine's routes: no error")
	}
	// A network made in another range: its traffic out would not be
	// masqueraded.
	dir := t.TempDir()
	m, _ = newManager(t, newFakeHost(), dir, "10.208.0.0/16")
	m.Attach("t", "a.internal", []NetSpec{spec("ruche-a-default")})
	m.Close()
	if _, err := New(Config{Range: netip.MustParsePrefix("10.209.0.0/16"), StateDir: dir, Host: newFakeHost()}); err == nil || !strings.Contains(err.Error(), "outside --private-range") {
		t.Errorf("a state file with a subnet outside the new range: %v", err)
	}
}

// TestNames: a published container's names resolve on its networks only,
// to its address, until it is unpublished.
func TestNames(t *testing.T) {
	h := newFakeHost()
	m, dns := newManager(t, h, t.TempDir(), "10.208.0.0/16")
	a := []NetSpec{spec("ruche-a-default")}
	ifs1, _ := m.Attach("t1", "a.internal", a)
	ifs2, _ := m.Attach("t2", "a.internal", a)
	m.Attach("t3", "b.internal", []NetSpec{spec("ruche-b-default")})
	l1, l2 := Labels([]NetSpec{spec("ruche-a-default")}, ifs1), Labels([]NetSpec{spec("ruche-a-default")}, ifs2)
	m.Publish("c1", l1, map[string][]string{"ruche-a-default": {"db", "1.DB"}})
	m.Publish("c2", l2, map[string][]string{"ruche-a-default": {"db", "2.db"}})
	lookA, lookB := dns.lookups["10.208.0.1:53"], dns.lookups["10.208.1.1:53"]
	if got := lookA("db"); len(got) != 2 {
		t.Errorf("db = %v, want both replicas", got)
	}
	if got := lookA("1.db"); !slices.Equal(got, []netip.Addr{ifs1[0].Addr.Addr()}) {
		t.Errorf("1.db = %v, want %s (names are lowercased)", got, ifs1[0].Addr.Addr())
	}
	if got := lookB("db"); len(got) != 0 {
		t.Errorf("db on another project's network = %v, want nothing", got)
	}
	if !m.Published("c1") {
		t.Error("c1 not published")
	}
	m.Unpublish("c1")
	if got := lookA("db"); !slices.Equal(got, []netip.Addr{ifs2[0].Addr.Addr()}) {
		t.Errorf("db after c1 left = %v, want only c2", got)
	}
	if got := lookA("1.db"); len(got) != 0 || m.Published("c1") {
		t.Errorf("1.db after c1 left = %v", got)
	}
}

func TestRemoveUnused(t *testing.T) {
	h := newFakeHost()
	dir := t.TempDir()
	m, dns := newManager(t, h, dir, "10.208.0.0/16")
	m.Attach("t1", "a.internal", []NetSpec{spec("ruche-a-default")})
	m.Attach("t2", "b.internal", []NetSpec{spec("ruche-b-default")})
	if got := m.Unused(""); len(got) != 0 {
		t.Errorf("unused = %v, want none", got)
	}
	if ok, err := m.Remove("ruche-a-default"); ok || err != nil {
		t.Errorf("removing a network in use: %v, %v", ok, err)
	}
	m.Release("t1")
	if got := m.Unused("b"); len(got) != 0 {
		t.Errorf("unused of b = %v, want none", got)
	}
	if got := m.Unused(""); len(got) != 1 || got[0] != (NetSpec{Name: "ruche-a-default", Project: "a"}) {
		t.Fatalf("unused = %v, want ruche-a-default of a", got)
	}
	if ok, err := m.Remove("ruche-a-default"); !ok || err != nil {
		t.Fatalf("remove: %v, %v", ok, err)
	}
	if _, ok := h.bridges[BridgeName("ruche-a-default")]; ok || dns.closed != 1 {
		t.Errorf("bridge left, or name server not closed (%d)", dns.closed)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "privnet.json"))
	if strings.Contains(string(b), "ruche-a-default") || !strings.Contains(string(b), "ruche-b-default") {
		t.Errorf("state file after the removal: %s", b)
	}
	m.Close()
	if !slices.Equal(h.closed, []bool{false}) {
		t.Errorf("Close with a network left: teardown %v, want false", h.closed)
	}
}

func TestWiredPerRun(t *testing.T) {
	h := newFakeHost()
	m, _ := newManager(t, h, t.TempDir(), "10.208.0.0/16")
	ifs, _ := m.Attach("t1", "a.internal", []NetSpec{spec("ruche-a-default")})
	if err := m.Wire("c1", 100, ifs); err != nil || !m.Wired("c1", 100) {
		t.Fatalf("wire: %v", err)
	}
	if m.Wired("c1", 101) {
		t.Error("a restarted container (new process) counts as wired")
	}
	if len(VethPrefix("c1", 100)+"0") > 15 || len(BridgeName("ruche-a-very-long-project-name-default")) > 15 {
		t.Error("interface names longer than Linux's 15 bytes")
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		name                   string
		fileEP, fileCmd, ep, c []string
		want                   []string
	}{
		{"image only", nil, nil, []string{"/hello"}, []string{"serve"}, []string{netinit.InitPath, "/hello", "serve"}},
		{"file command", nil, []string{"x"}, []string{"/hello"}, []string{"serve"}, []string{netinit.InitPath, "/hello", "x"}},
		{"file entrypoint drops the image's command", []string{"/bin/sh"}, nil, []string{"/hello"}, []string{"serve"}, []string{netinit.InitPath, "/bin/sh"}},
		{"both from the file", []string{"sh", "-c"}, []string{"echo"}, []string{"/hello"}, nil, []string{netinit.InitPath, "sh", "-c", "echo"}},
		{"command only image", nil, nil, nil, []string{"nginx"}, []string{netinit.InitPath, "nginx"}},
	}
	for _, tt := range tests {
		got, err := Command(tt.fileEP, tt.fileCmd, tt.ep, tt.c)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if _, err := Command(nil, nil, nil, nil); err == nil {
		t.Error("nothing to run: no error")
	}
}

// TestPorts: a published TCP port carries connections to the container's
// address (here a loopback server standing for it), has a forwarding rule
// unless it is on loopback only, and is released by ClosePorts; a taken
// port is an error that leaves nothing open.
func TestPorts(t *testing.T) {
	h := newFakeHost()
	m, _ := newManager(t, h, t.TempDir(), "10.208.0.0/16")
	backend, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	target := uint16(backend.Addr().(*net.TCPAddr).Port)
	lo := netip.MustParseAddr("127.0.0.1")
	bs, err := m.OpenPorts("c1", lo, "br", []client.PortSpec{{Target: target, HostIP: "127.0.0.1"}})
	if err != nil || len(bs) != 1 || bs[0].Published == 0 || bs[0].HostIP != "127.0.0.1" || bs[0].Protocol != "tcp" {
		t.Fatalf("bindings %+v, %v", bs, err)
	}
	if len(h.fwd["c1"]) != 0 {
		t.Errorf("a loopback-only port got a forwarding rule: %+v", h.fwd["c1"])
	}
	c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(bs[0].Published))))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Errorf("through the published port: %q, %v", buf, err)
	}
	c.Close()
	if again, _ := m.OpenPorts("c1", lo, "br", nil); !slices.Equal(again, bs) {
		t.Errorf("a second OpenPorts: %+v, want the same bindings", again)
	}

	// The same port for another container: taken.
	taken := []client.PortSpec{{Target: 1, Protocol: "udp"}, {Target: target, Published: bs[0].Published, HostIP: "127.0.0.1"}}
	if _, err := m.OpenPorts("c2", lo, "br", taken); err == nil {
		t.Fatal("a taken port: no error")
	}
	if len(h.fwd["c2"]) != 0 || m.Ports("c2") != nil {
		t.Errorf("after the failure: forwards %+v, ports %+v", h.fwd["c2"], m.Ports("c2"))
	}
	udp, err := m.OpenPorts("c3", lo, "br", []client.PortSpec{{Target: 53, Protocol: "udp"}})
	if err != nil || len(h.fwd["c3"]) != 1 || h.fwd["c3"][0].Dest != netip.AddrPortFrom(lo, 53) || udp[0].HostIP != "0.0.0.0" {
		t.Errorf("udp on every address: %+v, %v, forwards %+v", udp, err, h.fwd["c3"])
	}
	if _, err := m.OpenPorts("c4", lo, "br", []client.PortSpec{{Target: 80, HostIP: "::1"}}); err == nil {
		t.Error("an IPv6 host address: no error")
	}

	if err := m.ClosePorts("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(bs[0].Published)))); err == nil {
		t.Error("the port still answers after ClosePorts")
	}
	m.ClosePorts("c3")
	if len(h.fwd) != 0 {
		t.Errorf("forwards left: %+v", h.fwd)
	}
}

// inflightDNS models privdns.Server.Close, which waits for the queries being
// answered: Close returns once a lookup made by a query still in flight
// has returned.
type inflightDNS struct{ lookup func(string) []netip.Addr }

func (d *inflightDNS) start(addr, domain string, lookup func(string) []netip.Addr) (interface{ Close() error }, error) {
	d.lookup = lookup
	return d, nil
}

func (d *inflightDNS) Close() error {
	done := make(chan struct{})
	go func() { d.lookup("db"); close(done) }()
	<-done
	return nil
}

// TestRemoveWithQueryInFlight: removing a network (or closing the manager)
// while its name server answers a query must not deadlock, since the name
// server's Close waits for the query, whose lookup reads the names.
func TestRemoveWithQueryInFlight(t *testing.T) {
	for _, op := range []string{"remove", "close"} {
		d := &inflightDNS{}
		m, err := New(Config{StateDir: t.TempDir(), Host: newFakeHost(), DNS: d.start})
		if err != nil {
			t.Fatal(err)
		}
		m.Attach("t1", "a.internal", []NetSpec{spec("ruche-a-default")})
		m.Release("t1")
		done := make(chan error, 1)
		go func() {
			if op == "remove" {
				_, err := m.Remove("ruche-a-default")
				done <- err
			} else {
				done <- m.Close()
			}
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", op, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s with a query in flight: deadlock", op)
		}
	}
}

// TestRemoveFailureEnsuresAgain: a removal that fails half-way (the name
// server closed, the bridge's rules perhaps deleted) leaves a network that
// the next Attach sets up again, rules and name server.
func TestRemoveFailureEnsuresAgain(t *testing.T) {
	h := newFakeHost()
	m, dns := newManager(t, h, t.TempDir(), "10.208.0.0/16")
	nets := []NetSpec{spec("ruche-a-default")}
	m.Attach("t1", "a.internal", nets)
	m.Release("t1")
	h.delFail = errors.New("device busy")
	if ok, err := m.Remove("ruche-a-default"); ok || err == nil {
		t.Fatalf("remove: %v, %v; want the host's error", ok, err)
	}
	h.delFail = nil
	delete(dns.lookups, "10.208.0.1:53")
	if _, err := m.Attach("t2", "a.internal", nets); err != nil {
		t.Fatal(err)
	}
	if n := h.ensured[BridgeName("ruche-a-default")]; n != 2 {
		t.Errorf("bridge ensured %d times, want 2: its rules are not restored after the failed removal", n)
	}
	if dns.lookups["10.208.0.1:53"] == nil {
		t.Error("no name server after the failed removal")
	}
}

// fakeSubnets is the managers' IPAM: a fixed subnet per network.
type fakeSubnets struct {
	give     map[string]netip.Prefix
	asked    []netip.Prefix // the have argument of each call
	released []string
}

func (f *fakeSubnets) Subnet(spec NetSpec, have netip.Prefix, avoid []netip.Prefix) (netip.Prefix, error) {
	f.asked = append(f.asked, have)
	return f.give[spec.Name], nil
}

func (f *fakeSubnets) Release(name string) error {
	f.released = append(f.released, name)
	return nil
}

// TestClusterSubnetsAndMesh: with the managers' IPAM, a network takes the
// subnet they give; a restart asks them to confirm the subnet of the
// state file (and fails on a disagreement); a removal releases it. The
// mesh's view sets the bridges' mesh rules and the names of other nodes.
func TestClusterSubnetsAndMesh(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	ipam := &fakeSubnets{give: map[string]netip.Prefix{"ruche-a-default": netip.MustParsePrefix("10.208.7.0/24")}}
	d := &fakeDNS{lookups: map[string]func(string) []netip.Addr{}, domains: map[string]string{}}
	cfg := Config{Range: DefaultRange, StateDir: dir, Host: h, DNS: d.start, Subnets: ipam}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ifs, err := m.Attach("t1", "a.internal", []NetSpec{spec("ruche-a-default")})
	if err != nil || ifs[0].Addr != netip.MustParsePrefix("10.208.7.2/24") {
		t.Fatalf("attach: %+v %v, want 10.208.7.2/24 from the managers", ifs, err)
	}
	// The machine's routes: its own bridge's, and another's (a ruche of
	// another data dir): only the other is to be avoided.
	h.taken = []netip.Prefix{netip.MustParsePrefix("10.208.7.0/24"), netip.MustParsePrefix("10.208.7.1/32"), netip.MustParsePrefix("10.208.12.0/24")}
	if got := m.Avoid(); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.208.12.0/24")}) {
		t.Errorf("avoid %v, want the other bridge's subnet only", got)
	}
	h.taken = nil
	remote := netip.MustParsePrefix("10.208.9.0/24")
	err = m.SetMesh(MeshView{Iface: MeshPrefix + "x", Nodes: []netip.Addr{netip.MustParseAddr("10.208.0.2")},
		Remote: map[string][]netip.Prefix{"ruche-a-default": {remote}},
		Names:  map[string]map[string][]netip.Addr{"ruche-a-default": {"db": {netip.MustParseAddr("10.208.9.2")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := meshRules(MeshPrefix+"x", []netip.Addr{netip.MustParseAddr("10.208.0.2")},
		[]MeshBridge{{Bridge: BridgeName("ruche-a-default"), Subnet: netip.MustParsePrefix("10.208.7.0/24"), Remote: []netip.Prefix{remote}}}); !reflect.DeepEqual(h.mesh, want) {
		t.Errorf("mesh rules\n got %v\nwant %v", h.mesh, want)
	}
	if got := d.lookups["10.208.7.1:53"]("db"); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.208.9.2")}) {
		t.Errorf("db: %v, want the replica on the other node", got)
	}
	m.Close()

	// A restart: the subnet of the state file is confirmed.
	m2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Ifaces([]NetSpec{spec("ruche-a-default")}, Labels([]NetSpec{spec("ruche-a-default")}, ifs)); err != nil {
		t.Fatal(err)
	}
	if last := ipam.asked[len(ipam.asked)-1]; last != netip.MustParsePrefix("10.208.7.0/24") {
		t.Errorf("after a restart the managers were asked with %v, want the state file's subnet", last)
	}
	m2.Release("t1")
	if _, err := m2.Remove("ruche-a-default"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ipam.released, []string{"ruche-a-default"}) {
		t.Errorf("released %v", ipam.released)
	}
	m2.Close()

	// The managers disagree with the state file: refused, not used.
	ipam.give["ruche-b-default"] = netip.MustParsePrefix("10.208.8.0/24")
	m3, _ := New(cfg)
	if _, err := m3.Attach("t2", "b.internal", []NetSpec{spec("ruche-b-default")}); err != nil {
		t.Fatal(err)
	}
	m3.Close()
	ipam.give["ruche-b-default"] = netip.MustParsePrefix("10.208.5.0/24")
	m4, _ := New(cfg)
	if _, err := m4.Attach("t3", "b.internal", []NetSpec{spec("ruche-b-default")}); err == nil || !strings.Contains(err.Error(), "the cluster gives it 10.208.5.0/24") {
		t.Errorf("a subnet the managers disagree with: %v", err)
	}
}

// TestAdoptFromBridge: a data dir without the state file (restored from a
// backup, which holds the store only) takes the networks of its running
// containers back from their bridges, and gives their addresses to no
// one else.
func TestAdoptFromBridge(t *testing.T) {
	h := newFakeHost()
	m, _ := newManager(t, h, t.TempDir(), "10.208.0.0/16")
	nets := []NetSpec{{Name: "ruche-a-back", Project: "a", Internal: true}}
	m.Attach("x", "a.internal", []NetSpec{spec("ruche-b-default")}) // 10.208.0.0/24
	ifs, err := m.Attach("t1", "a.internal", nets)                  // 10.208.1.0/24
	if err != nil {
		t.Fatal(err)
	}
	labels := Labels(nets, ifs)
	labels["ruche.project"] = "a"
	m.Close()

	m2, dns := newManager(t, h, t.TempDir(), "10.208.0.0/16") // another data dir, the same machine
	m2.Adopt("t1", labels)
	got, err := m2.Ifaces(nets, labels)
	if err != nil || got[0] != ifs[0] {
		t.Fatalf("after adoption: %+v %v, want %+v", got, err, ifs[0])
	}
	if !h.intern[BridgeName("ruche-a-back")] || dns.domains["10.208.1.1:53"] != "a.internal" {
		t.Errorf("internal %v, domain %q: want the spec's internal and the project's domain", h.intern[BridgeName("ruche-a-back")], dns.domains["10.208.1.1:53"])
	}
	ifs2, err := m2.Attach("t2", "a.internal", nets)
	if err != nil || ifs2[0].Addr.Addr() != netip.MustParseAddr("10.208.1.3") {
		t.Errorf("a new replica: %+v %v, want 10.208.1.3 (.2 is t1's)", ifs2, err)
	}
}

// pickSubnets is the managers' IPAM that knows none of this node's
// networks (a node removed and joined again, a data dir restored, a state
// file from before the managers' IPAM): the lowest /24 after the first
// that overlaps nothing the node says to avoid.
type pickSubnets struct{}

func (pickSubnets) Subnet(spec NetSpec, have netip.Prefix, avoid []netip.Prefix) (netip.Prefix, error) {
	if have.IsValid() && !slices.ContainsFunc(avoid, have.Overlaps) {
		return have, nil
	}
	for i := 1; i < 256; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 208, byte(i), 0}), 24)
		if !slices.ContainsFunc(avoid, p.Overlaps) {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("full")
}

func (pickSubnets) Release(string) error { return nil }

// TestNewSubnetAvoidsUnclaimed: a network of the state file the managers
// do not know yet (not claimed since start) keeps its subnet from a new
// network: the managers are told to avoid it, else they record it for
// the new network, which then never comes up, and the old one cannot be
// claimed.
func TestNewSubnetAvoidsUnclaimed(t *testing.T) {
	dir := t.TempDir()
	h := newFakeHost()
	cfg := Config{Range: DefaultRange, StateDir: dir, Host: h,
		Subnets: &fakeSubnets{give: map[string]netip.Prefix{"ruche-a-default": netip.MustParsePrefix("10.208.1.0/24")}}}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach("t1", "a.internal", []NetSpec{spec("ruche-a-default")}); err != nil {
		t.Fatal(err)
	}
	m.Close()

	cfg.Subnets = pickSubnets{}
	m2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ifs, err := m2.Attach("t2", "b.internal", []NetSpec{spec("ruche-b-default")})
	if err != nil {
		t.Fatalf("a new network beside an unclaimed one of the state file: %v", err)
	}
	if ifs[0].Addr.Overlaps(netip.MustParsePrefix("10.208.1.0/24")) {
		t.Errorf("the new network got %s, the subnet of ruche-a-default", ifs[0].Addr)
	}
}

// TestNamesOfANetworkMadeAfterTheMesh: a network that comes to the node
// after the mesh's last view (taken back from its bridge, or made again
// with its subnet still recorded) answers the names on other nodes that
// view has for it.
func TestNamesOfANetworkMadeAfterTheMesh(t *testing.T) {
	h := newFakeHost()
	m, dns := newManager(t, h, t.TempDir(), "10.208.0.0/16")
	db := netip.MustParseAddr("10.208.9.2")
	if err := m.SetMesh(MeshView{Iface: MeshPrefix + "x",
		Names: map[string]map[string][]netip.Addr{"ruche-a-default": {"db": {db}}}}); err != nil {
		t.Fatal(err)
	}
	ifs, err := m.Attach("t1", "a.internal", []NetSpec{spec("ruche-a-default")})
	if err != nil {
		t.Fatal(err)
	}
	lookup := dns.lookups[ifs[0].Gateway.String()+":53"]
	if lookup == nil {
		t.Fatal("no name server")
	}
	if got := lookup("db"); !slices.Equal(got, []netip.Addr{db}) {
		t.Errorf("db: %v, want the replica on the other node (%s)", got, db)
	}
}

// TestLocal: what of the range the machine has, for the routes over the
// mesh to keep clear of: its routes and its own networks' subnets.
func TestLocal(t *testing.T) {
	h := newFakeHost()
	m, _ := newManager(t, h, t.TempDir(), "10.208.0.0/16")
	if _, err := m.Attach("t1", "a.internal", []NetSpec{spec("ruche-a-default")}); err != nil { // 10.208.0.0/24
		t.Fatal(err)
	}
	h.taken = []netip.Prefix{netip.MustParsePrefix("10.208.0.0/24"), netip.MustParsePrefix("10.208.12.0/24"), netip.MustParsePrefix("192.168.1.0/24")}
	got := m.Local()
	slices.SortFunc(got, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	if want := []netip.Prefix{netip.MustParsePrefix("10.208.0.0/24"), netip.MustParsePrefix("10.208.12.0/24")}; !slices.Equal(got, want) {
		t.Errorf("local %v, want %v", got, want)
	}
}
