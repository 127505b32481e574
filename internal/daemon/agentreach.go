package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/nodeapi"
	"github.com/ruche-platform/ruche/internal/proxy"
	"github.com/ruche-platform/ruche/internal/routing"
)

// What an agent-only node (`ruche agent`) runs to be reached across nodes:
// the node API for the managers, and the ingress proxy fed with the
// routing table the managers compute for it (an agent has no store).

// routeSource is where an agent node's routing table and certificates
// come from: agent.RemoteConn.
type routeSource interface {
	WatchRoutes(ctx context.Context, node string) <-chan []routing.Route
	WatchCerts(ctx context.Context, node string) <-chan []agent.CertBundle
	ACMEChallenge(ctx context.Context, node, host, path string) ([]byte, error)
	ACMEALPNCert(ctx context.Context, node, host string) (agent.CertBundle, error)
}

// agentIngress is the proxy of an agent-only node.
type agentIngress struct {
	node   string
	proxy  *proxy.Proxy
	certs  *agentCerts
	routes routeSource
	log    *slog.Logger
}

// newAgentIngress builds the proxy of an agent node. Its certificates
// come from the managers (agentCerts): keys are sealed in the store, which
// agents cannot read.
func newAgentIngress(cfg IngressConfig, node string, routes routeSource, log *slog.Logger, reg prometheus.Registerer) (*agentIngress, error) {
	pcfg, err := proxyConfig(cfg)
	if err != nil {
		return nil, err
	}
	log = log.With("component", "agent-ingress")
	certs := &agentCerts{node: node, src: routes, log: log}
	return &agentIngress{
		node:   node,
		proxy:  proxy.New(pcfg, proxy.Deps{Log: log, Metrics: reg, Certs: certs}),
		certs:  certs,
		routes: routes,
		log:    log,
	}, nil
}

// run starts the proxy and the feeds of its table and certificates with
// run; it returns at once.
func (in *agentIngress) run(ctx context.Context, run func(name string, fn func() error)) {
	run("proxy", func() error { return in.proxy.Run(ctx) })
	run("routing", func() error { in.feed(ctx); return nil })
	run("certificates", func() error { in.certs.feed(ctx); return nil })
}

// feed hands every table the managers send to the proxy until ctx ends.
func (in *agentIngress) feed(ctx context.Context) {
	var version uint64
	for set := range in.routes.WatchRoutes(ctx, in.node) {
		version++
		in.proxy.Update(proxyTable(&routing.Table{Routes: set}, version))
		in.log.Debug("routing table updated", "routes", len(set), "version", version)
	}
}

// proxyConfig is the proxy part of the ingress flags.
func proxyConfig(cfg IngressConfig) (proxy.Config, error) {
	pcfg := proxy.Config{
		HTTPAddr: cfg.HTTPAddr, HTTPSAddr: cfg.HTTPSAddr, RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst,
		MaxBodyBytes: cfg.MaxBodyBytes, HoldTimeout: cfg.HoldTimeout, DrainTimeout: cfg.DrainTimeout,
	}
	for _, s := range cfg.TrustedProxies {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return pcfg, fmt.Errorf("--trusted-proxy %q: not an address or CIDR prefix", s)
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		pcfg.TrustedProxies = append(pcfg.TrustedProxies, pfx)
	}
	if cfg.AccessLog {
		pcfg.AccessLog = os.Stderr
	}
	return pcfg, nil
}

// newNodeAPI is the node API of an agent node, on addr, with the node
// certificate: logs of its replicas for the managers, and the drain of a
// replica from its proxy (drainer; nil without an ingress).
func newNodeAPI(addr string, cert tls.Certificate, ca *x509.CertPool, ag *agent.Agent, drainer agent.Drainer, log *slog.Logger) *nodeapi.Server {
	return nodeapi.New(nodeapi.Config{Addr: addr, Cert: cert, CA: ca}, nodeapi.Deps{Logs: ag, Drainer: drainer, Log: log})
}
