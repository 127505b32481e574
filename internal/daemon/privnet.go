package daemon

import (
	"debug/elf"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/ruche-platform/ruche/internal/privdns"
	"github.com/ruche-platform/ruche/internal/privnet"
)

// The replicas' networks (`ruche up --networks`).
const (
	NetworksDocker = "docker"
	NetworksRuche  = "ruche"
)

// openPrivnet sets up ruche's own networks on this node: the firewall
// chains, the state of the networks, the name servers' forwarders, and
// the init binary (this executable, which must be static: it runs in
// containers of any image).
func openPrivnet(cfg Config, log *slog.Logger) (*privnet.Manager, string, error) {
	bin, err := staticExecutable()
	if err != nil {
		return nil, "", err
	}
	rng := cfg.PrivateRange
	if !rng.IsValid() {
		rng = privnet.DefaultRange
	}
	host, err := privnet.NewHost(rng)
	if err != nil {
		return nil, "", fmt.Errorf("--networks %s: %w", NetworksRuche, err)
	}
	upstreams := cfg.DNSUpstreams
	if len(upstreams) == 0 {
		if upstreams, err = privdns.HostUpstreams("/etc/resolv.conf"); err != nil {
			log.Warn("private networks: no name server to forward public names to", "err", err)
		}
	}
	plog := log.With("component", "privnet")
	dns := func(addr, domain string, lookup func(string) []netip.Addr) (interface{ Close() error }, error) {
		return privdns.Start(privdns.Config{Addr: addr, Domain: domain, Lookup: lookup, Upstreams: upstreams, Log: plog})
	}
	dir := filepath.Join(cfg.DataDir, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		host.Close(false)
		return nil, "", err
	}
	m, err := privnet.New(privnet.Config{Range: rng, StateDir: dir, Host: host, DNS: dns, Log: plog})
	if err != nil {
		host.Close(false)
		return nil, "", err
	}
	return m, bin, nil
}

// staticExecutable returns the path of this executable, checking that it
// is statically linked (no program interpreter).
func staticExecutable() (string, error) {
	p, err := os.Executable()
	if err == nil {
		p, err = filepath.EvalSymlinks(p)
	}
	if err != nil {
		return "", fmt.Errorf("--networks %s: find this executable: %w", NetworksRuche, err)
	}
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("--networks %s: %s: %w", NetworksRuche, p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return "", fmt.Errorf("--networks %s: %s is dynamically linked; it runs inside containers as their init, so build it static (CGO_ENABLED=0, as make build does)", NetworksRuche, p)
		}
	}
	// Containers that run as another user (compose's user:) execute it
	// too.
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o005 != 0o005 {
		return "", fmt.Errorf("--networks %s: %s must be readable and executable by every user (mode 0755): it runs inside containers as their init, also as their own users", NetworksRuche, p)
	}
	return p, nil
}
