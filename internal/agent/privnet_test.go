package agent

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/netinit"
	"github.com/ruche-platform/ruche/internal/privnet"
	"github.com/ruche-platform/ruche/internal/runtime"
)

// wireHost is a privnet.Host that records the wiring.
type wireHost struct {
	mu    sync.Mutex
	wires []int // pids wired, in order
	names map[string]bool
	fwd   []privnet.Forward
}

func (w *wireHost) Taken() ([]netip.Prefix, error)                { return nil, nil }
func (w *wireHost) EnsureBridge(string, netip.Prefix, bool) error { return nil }
func (w *wireHost) DeleteBridge(string, netip.Prefix) error       { return nil }
func (w *wireHost) SetMesh([][]string) error                      { return nil }
func (w *wireHost) BridgeAddr(string) (netip.Prefix, error) {
	return netip.Prefix{}, errors.New("no bridge")
}
func (w *wireHost) Close(bool) error { return nil }
func (w *wireHost) AddForward(owner string, f privnet.Forward) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fwd = append(w.fwd, f)
	return nil
}
func (w *wireHost) RemoveForwards(string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fwd = nil
	return nil
}
func (w *wireHost) Wired(prefix string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.names[prefix]
}
func (w *wireHost) Wire(pid int, prefix string, _ []privnet.Iface) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wires = append(w.wires, pid)
	w.names[prefix] = true
	return nil
}

func (w *wireHost) wired() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.wires)
}

// TestPrivnetReplica: on ruche's networks a replica's container has no
// engine network, ruche's init in front of the image's command, the
// network's name server; it is wired at each start (a new process each
// time), its name resolves while it is ready, and its address is freed
// with it.
func TestPrivnetReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		wh := &wireHost{names: map[string]bool{}}
		lookup, dns := captureDNS()
		pn, err := privnet.New(privnet.Config{Range: netip.MustParsePrefix("10.208.0.0/16"), StateDir: t.TempDir(), Host: wh, DNS: dns})
		if err != nil {
			t.Fatal(err)
		}
		h.pn = pn
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{Environment: map[string]string{"FAKE_EXIT_AFTER": "10s"},
			RestartPolicy: client.RestartPolicy{Condition: client.RestartAny}})
		h.put(tk)
		st := h.waitState(tk.ID, client.StateRunning)
		if st.Addresses["default"] != "10.208.0.2" {
			t.Errorf("addresses: %v, want default 10.208.0.2", st.Addresses)
		}
		c, spec, _ := h.rt.container(tk.ID)
		if !spec.NoNetwork || len(spec.Networks) != 0 {
			t.Errorf("engine networks: NoNetwork %v, %+v", spec.NoNetwork, spec.Networks)
		}
		if !slices.Equal(spec.Entrypoint, []string{netinit.InitPath, "/hello"}) || len(spec.Command) != 0 {
			t.Errorf("entrypoint %v command %v, want the init then the image's command", spec.Entrypoint, spec.Command)
		}
		if !slices.Contains(spec.Mounts, runtime.Mount{Type: client.MountBind, Source: "/usr/local/bin/ruche", Target: netinit.InitPath, ReadOnly: true}) {
			t.Errorf("mounts %+v: no init", spec.Mounts)
		}
		if !slices.Equal(spec.DNS, []string{"10.208.0.1"}) || !slices.Equal(spec.DNSSearch, []string{"p.internal"}) {
			t.Errorf("dns %v search %v", spec.DNS, spec.DNSSearch)
		}
		if !slices.Contains(spec.Env, "RUCHE_PRIVATE_IP=10.208.0.2") || !slices.Contains(spec.Env, "RUCHE_PRIVATE_HOSTNAME=1.web.p.internal") {
			t.Errorf("env %v: no private address and name", spec.Env)
		}
		if c.Labels[privnet.LabelAddrPrefix+"ruche-p-default"] != "10.208.0.2" {
			t.Errorf("labels %v: no address", c.Labels)
		}
		if got := wh.wired(); len(got) != 1 || got[0] != c.Pid {
			t.Errorf("wired %v, want the process %d once", got, c.Pid)
		}
		for _, name := range []string{"web", "1.web"} {
			if got := (*lookup)(name); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.208.0.2")}) {
				t.Errorf("%s = %v", name, got)
			}
		}

		advance(10e9) // the container exits, and is restarted after a delay
		for i := 0; i < 50 && h.status(tk.ID).State == client.StateRunning; i++ {
			advance(1e8)
		}
		if got := (*lookup)("web"); len(got) != 0 {
			t.Errorf("web while the replica is down (%s) = %v", h.status(tk.ID).State, got)
		}
		st = h.waitState(tk.ID, client.StateRunning)
		c, _, _ = h.rt.container(tk.ID)
		if got := wh.wired(); len(got) != 2 || got[1] != c.Pid || st.Restarts != 1 {
			t.Errorf("after a restart: wired %v (restarts %d), want the new process %d wired too", got, st.Restarts, c.Pid)
		}
		if got := (*lookup)("web"); len(got) != 1 {
			t.Errorf("web after the restart = %v", got)
		}

		h.del(tk)
		advance(1e9)
		if got := (*lookup)("web"); len(got) != 0 {
			t.Errorf("web after the removal = %v", got)
		}
		if u := pn.Unused("p"); len(u) != 1 {
			t.Errorf("unused networks of p: %v, want the default network (its address freed)", u)
		}
	})
}

// TestPrivnetPublishesPorts: Docker cannot publish the ports of a
// container without a network; ruche publishes them once the container
// is wired (a rule to its address, a socket holding the port), reports
// the binding, and unpublishes them when the replica goes.
func TestPrivnetPublishesPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		wh := &wireHost{names: map[string]bool{}}
		pn, err := privnet.New(privnet.Config{StateDir: t.TempDir(), Host: wh})
		if err != nil {
			t.Fatal(err)
		}
		h.pn = pn
		h.start()
		defer h.stop()
		// UDP: a socket that holds the port, no goroutine blocked on the
		// network inside the test's bubble.
		tk := task(1, "a1", client.ServiceSpec{Ports: []client.PortSpec{{Target: 10000, Protocol: "udp"}}})
		h.put(tk)
		st := h.waitState(tk.ID, client.StateRunning)
		if len(st.Ports) != 1 || st.Ports[0].Target != 10000 || st.Ports[0].Published == 0 || st.Ports[0].Protocol != "udp" {
			t.Fatalf("ports %+v, want 10000/udp published", st.Ports)
		}
		_, spec, _ := h.rt.container(tk.ID)
		if len(spec.Ports) != 0 {
			t.Errorf("the engine was asked to publish %+v", spec.Ports)
		}
		wh.mu.Lock()
		fwd := slices.Clone(wh.fwd)
		wh.mu.Unlock()
		if len(fwd) != 1 || fwd[0].Dest != netip.MustParseAddrPort("10.208.0.2:10000") || fwd[0].HostPort != st.Ports[0].Published {
			t.Errorf("forwards %+v, want the published port to 10.208.0.2:10000", fwd)
		}
		h.del(tk)
		advance(1e9)
		wh.mu.Lock()
		left := len(wh.fwd)
		wh.mu.Unlock()
		if left != 0 || len(pn.Ports(st.ContainerID)) != 0 {
			t.Errorf("after the removal: %d forwards, ports %v", left, pn.Ports(st.ContainerID))
		}
	})
}

// captureDNS is a privnet.DNS that starts nothing and keeps the lookup
// of the last network it was asked for.
func captureDNS() (*func(string) []netip.Addr, privnet.DNS) {
	lookup := new(func(string) []netip.Addr)
	return lookup, func(addr, domain string, l func(string) []netip.Addr) (interface{ Close() error }, error) {
		*lookup = l
		return nopCloser{}, nil
	}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// TestPrivnetAfterAgentRestart: a restarted agent brings back the networks
// of the running containers it adopts (their name servers, bridges and
// rules: the firewall's chains are rebuilt at start), without wiring them
// again.
func TestPrivnetAfterAgentRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		wh := &wireHost{names: map[string]bool{}}
		lookup, dns := captureDNS()
		dir := t.TempDir()
		newPN := func() *privnet.Manager {
			pn, err := privnet.New(privnet.Config{StateDir: dir, Host: wh, DNS: dns})
			if err != nil {
				t.Fatal(err)
			}
			return pn
		}
		h.pn = newPN()
		h.start()
		tk := task(1, "a1", client.ServiceSpec{})
		h.put(tk)
		h.waitState(tk.ID, client.StateRunning)
		h.stop()
		h.pn.Close()

		*lookup = nil
		h.pn = newPN()
		h.start()
		defer h.stop()
		advance(31e9) // a resync
		if *lookup == nil {
			t.Fatal("no name server after the restart")
		}
		if got := (*lookup)("web"); len(got) != 1 {
			t.Errorf("web after the restart = %v", got)
		}
		if got := wh.wired(); len(got) != 1 {
			t.Errorf("wired %v, want the container wired once, before the restart", got)
		}
	})
}
