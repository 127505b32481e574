package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ruche-platform/ruche/internal/privnet"
)

// privnetRange is the test's --private-range, checked against the host's
// routes by ruche itself (it refuses a range a route covers).
const privnetRange = "10.213.88.0/22"

const privnetCompose = `
services:
  web:
    image: @IMAGE@
    environment:
      HELLO_FETCH: "1"
    x-ruche:
      routes:
        - host: @HOST@
          port: 8080
          tls: none
  db:
    image: @IMAGE@
    healthcheck:
      test: ["CMD", "/hello", "health"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 2
      restart_policy:
        condition: any
        delay: 1s
`

// TestPrivateNetworks: `ruche up --networks ruche` gives each project a
// bridge of ruche's, the replicas addresses and names of ruche's (a real
// DNS client, dig, asks the network's name server), keeps projects apart
// and off the node, keeps it all across a restart of ruche and of a
// replica, and removes it with the projects. Containers reach only their
// project's addresses; the name server forwards to a closed loopback port
// (--dns-upstream), so nothing leaves the machine.
func TestPrivateNetworks(t *testing.T) {
	needRoot(t, "ruche's networks create bridges and iptables rules")
	for _, tool := range []string{"dig", "curl", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing (make test installs it)", tool)
			}
			t.Skipf("%s is missing", tool)
		}
	}
	p := startPlatform(t, "--networks", "ruche", "--private-range", privnetRange, "--dns-upstream", freePort(t))
	a, b := uniq("e2e-pna-"), uniq("e2e-pnb-")
	cleanupProject(t, p, a)
	cleanupProject(t, p, b)
	hostA, hostB := a+".ruche.test", b+".ruche.test"
	compose := func(host string) string {
		return writeCompose(t, strings.NewReplacer("@IMAGE@", image, "@HOST@", host).Replace(privnetCompose))
	}
	p.must("deploy", "-f", compose(hostA), "-p", a)
	p.must("deploy", "-f", compose(hostB), "-p", b)

	port := portOf(t, p.httpAddr)
	// ask GETs path through the ingress from web of the project of host.
	ask := func(host, path string) string {
		out, _ := curl(t, "--resolve", host+":"+port+":127.0.0.1", "http://"+host+":"+port+path)
		return out
	}
	if out := ask(hostA, "/fetch?url=http://db:8080/"); !strings.HasPrefix(out, "200 hello from db.") {
		t.Fatalf("web of %s fetching http://db:8080/: %q", a, out)
	}
	dbAddrs := strings.Fields(ask(hostA, "/resolve?name=db"))
	if len(dbAddrs) != 2 {
		t.Fatalf("db in %s resolves to %v, want its 2 replicas", a, dbAddrs)
	}
	for _, ad := range dbAddrs {
		if !netip.MustParsePrefix(privnetRange).Contains(netip.MustParseAddr(ad)) {
			t.Errorf("db address %s is not in %s", ad, privnetRange)
		}
	}
	if one := strings.Fields(ask(hostA, "/resolve?name=2.db")); len(one) != 1 {
		t.Errorf("2.db resolves to %v, want one address", one)
	}

	// The name server, asked by a real client on the host.
	gwA := gateway(t, dbAddrs[0])
	if got, err := digShort(gwA, "db."+a+".internal"); err != nil || len(got) != 2 {
		t.Errorf("dig @%s db.%s.internal: %v %v, want 2 addresses", gwA, a, got, err)
	}
	out, _ := exec.Command("dig", "+time=2", "+tries=1", "@"+gwA, "db."+b+".internal").Output()
	if !strings.Contains(string(out), "NXDOMAIN") {
		t.Errorf("another project's name on %s's server: want NXDOMAIN, got\n%s", a, out)
	}

	// No IPv6 on ruche's links of the node: its rules are IPv4 rules.
	for _, br := range bridges(t) {
		if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + br + "/disable_ipv6"); err == nil && strings.TrimSpace(string(b)) != "1" {
			t.Errorf("bridge %s has IPv6 on", br)
		}
	}

	// Apart: b reaches neither a's replicas nor the node (but its DNS).
	if out := ask(hostB, "/resolve?name=db."+a+".internal"); !strings.Contains(out, "resolve:") {
		t.Errorf("%s resolving %s's db: %q, want a failure", b, a, out)
	}
	if out := ask(hostB, "/fetch?url=http://"+dbAddrs[0]+":8080/"); !strings.Contains(out, "fetch:") {
		t.Errorf("%s reaching %s's db at %s: %q, want a failure", b, a, dbAddrs[0], out)
	}
	gwB := gateway(t, strings.Fields(ask(hostB, "/resolve?name=db"))[0])
	if out := ask(hostB, "/fetch?url=http://"+gwB+":"+port+"/"); !strings.Contains(out, "fetch:") {
		t.Errorf("%s reaching the node's ingress at its gateway %s: %q, want a failure", b, gwB, out)
	}

	// A restart of ruche up adopts the containers, wired as they were.
	before := containersOf(t, a)
	p.stop()
	p.start()
	if after := containersOf(t, a); !maps.Equal(after, before) {
		t.Errorf("containers after the restart %v, want the same %v", after, before)
	}
	eventually(t, "db answering web after ruche's restart", 30*time.Second, func() bool {
		return strings.HasPrefix(ask(hostA, "/fetch?url=http://db:8080/"), "200 hello from db.")
	})
	// Each replica's name comes back as the agent sees it ready again.
	eventually(t, "dig @"+gwA+" db."+a+".internal giving both replicas after ruche's restart", 30*time.Second, func() bool {
		got, err := digShort(gwA, "db."+a+".internal") // no answer yet: try again
		return err == nil && len(got) == 2
	})

	// A replica killed is restarted, and wired again (a new process).
	cli := docker(t)
	for task, id := range containersOf(t, a) {
		if strings.Contains(task, ".db.") {
			if err := cli.ContainerKill(context.Background(), id, "KILL"); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "both db replicas restarted and answering", 60*time.Second, func() bool {
		n := 0
		for _, r := range service(t, p.project(a), "db").Replicas {
			if r.Status.Ready && r.Status.Restarts > 0 {
				n++
			}
		}
		return n == 2 && len(strings.Fields(ask(hostA, "/resolve?name=db"))) == 2 &&
			strings.HasPrefix(ask(hostA, "/fetch?url=http://1.db:8080/"), "200 hello from db.1") &&
			strings.HasPrefix(ask(hostA, "/fetch?url=http://2.db:8080/"), "200 hello from db.2")
	})

	// Published ports: on loopback (ruche's listener carries them) and on
	// every address (a DNAT rule; reached here at the node's address on
	// the test's own bridge, which goes through the same rule as traffic
	// from elsewhere would, in OUTPUT instead of PREROUTING).
	ported := writeCompose(t, strings.ReplaceAll(`
services:
  lo:
    image: @IMAGE@
    ports: ["127.0.0.1::8080"]
  all:
    image: @IMAGE@
    ports: ["8080"]
`, "@IMAGE@", image))
	c := uniq("e2e-pnc-")
	cleanupProject(t, p, c)
	p.must("deploy", "-f", ported, "-p", c)
	pc := p.project(c)
	loPort, allPort := hostPort(t, running(service(t, pc, "lo"))[0]), hostPort(t, running(service(t, pc, "all"))[0])
	if code, body := get(t, loPort, "/"); code != 200 || !strings.Contains(body, "hello from lo.1") {
		t.Errorf("127.0.0.1:%d: %d %q", loPort, code, body)
	}
	out, err := exec.Command("curl", "-sS", "--max-time", "5", fmt.Sprintf("http://%s:%d/", gwA, allPort)).Output()
	if err != nil || !strings.Contains(string(out), "hello from all.1") {
		t.Errorf("the node's address %s:%d (DNAT): %v %q", gwA, allPort, err, out)
	}
	// By the rule, not by the listener (which also holds every address):
	// the rule counted the connection's first packet.
	rules, _ := exec.Command("iptables", "-t", "nat", "-L", "RUCHE-DNAT", "-n", "-v", "-x").Output()
	matched := false
	for _, line := range strings.Split(string(rules), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] != "0" && strings.Contains(line, fmt.Sprintf("dpt:%d ", allPort)) {
			matched = true
		}
	}
	if !matched {
		t.Errorf("no packet went through the DNAT rule of port %d:\n%s", allPort, rules)
	}

	// Removing the projects removes their bridges and state; stopping
	// ruche with no network left removes its firewall chains.
	for _, proj := range []string{a, b, c} {
		p.must("rm", proj, "--timeout", "60s")
	}
	eventually(t, "the projects' bridges gone", 30*time.Second, func() bool {
		return len(bridges(t)) == 0
	})
	state, _ := os.ReadFile(filepath.Join(p.dataDir, "agent", "privnet.json"))
	if strings.Contains(string(state), "e2e-pn") {
		t.Errorf("state file after the removals:\n%s", state)
	}
	p.stop()
	if err := exec.Command("iptables", "-S", "RUCHE-FORWARD").Run(); err == nil {
		t.Error("chain RUCHE-FORWARD left after ruche stopped with no network")
	}
	p.start() // for the cleanups
}

// digShort asks server for name's A records with dig.
func digShort(server, name string) ([]string, error) {
	out, err := exec.Command("dig", "+short", "+time=2", "+tries=1", "@"+server, name).Output()
	return strings.Fields(string(out)), err
}

// gateway is the first address of an address's /24 (the bridge's).
func gateway(t *testing.T, addr string) string {
	t.Helper()
	a, err := netip.ParseAddr(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return netip.PrefixFrom(a, 24).Masked().Addr().Next().String()
}

// bridges lists ruche's bridges on the host.
func bridges(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, privnet.BridgePrefix) {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}
