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

// routeSource is where an agent node's routing table comes from:
// agent.RemoteConn.WatchRoutes.
type routeSource interface {
	WatchRoutes(ctx context.Context, node string) <-chan []routing.Route
}

// agentIngress is the proxy of an agent-only node.
type agentIngress struct {
	node   string
	proxy  *proxy.Proxy
	routes routeSource
	log    *slog.Logger
}

// newAgentIngress builds the proxy of an agent node. It serves plain HTTP
// only: certificates live in the managers' store with their keys sealed
// (see internal/nodeapi/README.md, "Ingress on agent nodes"), so the HTTPS
// listener is not started and a TLS route is served on HTTP without a
// redirect, as the proxy does without a certificate source.
func newAgentIngress(cfg IngressConfig, node string, routes routeSource, log *slog.Logger, reg prometheus.Registerer) (*agentIngress, error) {
	pcfg, err := proxyConfig(cfg)
	if err != nil {
		return nil, err
	}
	if pcfg.HTTPSAddr != "" {
		log.Warn("HTTPS on agent nodes is not supported yet: --https-addr ignored; TLS routes are served on HTTP here",
			"https_addr", pcfg.HTTPSAddr)
		pcfg.HTTPSAddr = ""
	}
	return &agentIngress{
		node:   node,
		proxy:  proxy.New(pcfg, proxy.Deps{Log: log, Metrics: reg}),
		routes: routes,
		log:    log.With("component", "agent-ingress"),
	}, nil
}

// run starts the proxy and the feed of its table with run; it returns at once.
func (in *agentIngress) run(ctx context.Context, run func(name string, fn func() error)) {
	run("proxy", func() error { return in.proxy.Run(ctx) })
	run("routing", func() error { in.feed(ctx); return nil })
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

// newNodeAPI is the node API of an agent node: logs of its replicas for
// the managers, on addr, with the node certificate.
func newNodeAPI(addr string, cert tls.Certificate, ca *x509.CertPool, ag *agent.Agent, log *slog.Logger) *nodeapi.Server {
	return nodeapi.New(nodeapi.Config{Addr: addr, Cert: cert, CA: ca}, nodeapi.Deps{Logs: ag, Log: log})
}
