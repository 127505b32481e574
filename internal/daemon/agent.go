package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/runtime/docker"
	"github.com/ruche-platform/ruche/internal/store"
)

// AgentConfig is what `ruche agent` takes.
type AgentConfig struct {
	DataDir string
	// Join is a manager's API URL; with Token, the machine joins the
	// cluster. Empty: the identity saved in DataDir by an earlier join is
	// used (and so is it when one exists: a node joins once).
	Join  string
	Token string
	// CAHash pins the cluster CA ("sha256:<hex>", printed by `ruche token
	// create`). Empty: the CA is trusted on first use, its fingerprint
	// logged.
	CAHash string
	Labels map[string]string
	// AdvertiseAddr is the IP address other nodes and the managers reach
	// this node at. Default: the local address of the connection to the
	// manager at join; then the saved one.
	AdvertiseAddr string
	// NodeName is the node's ID (default: the host name).
	NodeName string
	// NodeAPIAddr is where the node API listens (default
	// <AdvertiseAddr>:7444).
	NodeAPIAddr string
	// MetricsAddr is where /metrics is served over plain HTTP, for a
	// Prometheus server; empty: not served.
	MetricsAddr string
	DockerHost  string // default: DOCKER_HOST, else the default socket
	// ContainerLogs bound the log files of the replicas' containers.
	ContainerLogs docker.LogLimits
	// Ingress is the node's proxy (HTTP only on agent nodes for now; see
	// agentreach.go); both addresses empty turn it off.
	Ingress IngressConfig
	// Net is the replicas' networks (privnet.go): the same mode and range
	// as the cluster's other nodes.
	Net     NetworksConfig
	Version string
	Log     *slog.Logger
}

// Identity is what a node keeps of its join, in <data-dir>/agent.json next
// to node.crt, node.key (0600) and ca.crt.
type Identity struct {
	NodeID        string   `json:"node_id"`
	ClusterID     string   `json:"cluster_id"`
	Managers      []string `json:"managers"`
	AdvertiseAddr string   `json:"advertise_addr,omitempty"`
	// Networks and PrivateRange are the cluster's replica networks, as
	// the join answered (none: Docker's).
	Networks     string `json:"networks,omitempty"`
	PrivateRange string `json:"private_range,omitempty"`
}

// Files of a node's identity in its data directory.
const (
	identityFile = "agent.json"
	nodeCertFile = "node.crt"
	nodeKeyFile  = "node.key"
	caCertFile   = "ca.crt"
)

// ErrJoinRefused: the manager refused the join token.
var ErrJoinRefused = errors.New("join refused: token invalid or expired")

// RunAgent runs an agent that talks to the managers over mutual TLS, until
// ctx ends. Containers keep running after it returns; the next start adopts
// them.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	id, err := loadIdentity(cfg.DataDir)
	switch {
	case err == nil:
		if cfg.Join != "" {
			log.Info("this data dir already holds a node identity: --join and --token are ignored", "node", id.NodeID, "data_dir", cfg.DataDir)
		}
	case errors.Is(err, os.ErrNotExist) && cfg.Join != "":
		if id, err = Join(ctx, cfg); err != nil {
			return err
		}
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no node identity in %s: join a cluster first with --join URL --token T", cfg.DataDir)
	default:
		return err
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = id.AdvertiseAddr
	}
	if err := follow(&cfg.Net, store.NetworksRecord{Mode: id.Networks, Range: id.PrivateRange}); err != nil { // netmode.go
		return err
	}
	if cfg.NodeAPIAddr == "" && cfg.AdvertiseAddr != "" {
		cfg.NodeAPIAddr = net.JoinHostPort(cfg.AdvertiseAddr, "7444")
	}
	certPath, keyPath := filepath.Join(cfg.DataDir, nodeCertFile), filepath.Join(cfg.DataDir, nodeKeyFile)
	cert, err := pki.LoadPair(certPath, keyPath)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	pair := pki.NewKeypair(cert)
	caPEM, err := os.ReadFile(filepath.Join(cfg.DataDir, caCertFile))
	if err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("cluster CA: no certificate in %s", caCertFile)
	}

	rt, err := openDocker(ctx, cfg.DockerHost, cfg.ContainerLogs)
	if err != nil {
		return err
	}
	defer rt.Close()
	reg := newRegistry()
	conn := agent.NewRemoteConn(agent.RemoteConfig{Managers: id.Managers, Cert: cert, GetClientCertificate: pair.GetClientCertificate,
		RootCAs: pool, Log: log})
	defer conn.Close()
	host, _ := os.Hostname()
	var ing *agentIngress
	var drainer agent.Drainer
	if cfg.Ingress.HTTPAddr != "" || cfg.Ingress.HTTPSAddr != "" {
		if ing, err = newAgentIngress(cfg.Ingress, id.NodeID, conn, log, reg); err != nil {
			return err
		}
		drainer = ing.proxy
	}
	var netParts *privnetParts
	deps := agent.Deps{Runtime: rt, Conn: conn, Log: log, Metrics: reg, Events: conn,
		Drainer: crossNodeDrainer(drainer, func(ctx context.Context, task string) error { return conn.DrainElsewhere(ctx, id.NodeID, task) },
			drainTimeout(cfg.Ingress), log)}
	if cfg.Net.Mode == NetworksRuche {
		if netParts, err = openPrivnet(cfg.Net, cfg.DataDir, id.NodeID, cfg.AdvertiseAddr, conn, log); err != nil {
			return err
		}
		defer netParts.close(log)
		deps.Networks, deps.InitBinary = netParts.pn, netParts.initBin
	}
	ag := agent.New(agent.Config{
		NodeID: id.NodeID, ClusterID: id.ClusterID, Hostname: host, DataDir: filepath.Join(cfg.DataDir, "agent"), Labels: cfg.Labels,
		AdvertiseAddr: cfg.AdvertiseAddr, NodeAPIAddr: cfg.NodeAPIAddr, MetricsAddr: cfg.MetricsAddr,
	}, deps)

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	ps := newParts(ctx)
	run := ps.run
	run("agent", func() error { return ag.Run(ctx) })
	if netParts != nil {
		run("mesh", func() error { return netParts.loop.Run(ctx) })
	}
	run("manager list", func() error { return keepManagerList(ctx, cfg.DataDir, *id, conn, log) }) // agentmanagers.go
	renewed := make(chan struct{}, 1)
	renewer := &nodeCertRenewer{certPath: certPath, keyPath: keyPath, pair: pair, roots: pool, renew: conn.RenewCert,
		expiry: newNodeExpiryGauge(reg), log: log.With("component", "nodecert"),
		onRenew: func() {
			conn.CertRenewed()
			select {
			case renewed <- struct{}{}:
			default:
			}
		}}
	run("node certificate", func() error { return renewer.run(ctx) })          // nodecert.go
	run("membership", func() error { return stopWhenRemoved(ctx, conn, log) }) // nodecert.go
	if cfg.NodeAPIAddr != "" {
		run("node api", func() error {
			runNodeAPI(ctx, cfg.NodeAPIAddr, pair, pool, ag, drainer, renewed, log)
			return nil
		})
	} else {
		log.Warn("no advertise address: the node API is off, the managers cannot show this node's logs")
	}
	if ing != nil {
		ing.run(ctx, run)
	}
	if cfg.MetricsAddr != "" {
		run("metrics", func() error { return serveMetrics(ctx, cfg.MetricsAddr, reg, log) }) // metrics.go
	}
	log.Info("ruche agent is up", "node", id.NodeID, "cluster", id.ClusterID, "managers", id.Managers,
		"advertise_addr", cfg.AdvertiseAddr, "data_dir", cfg.DataDir)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-ps.failed():
	}
	stop()
	ps.wait()
	for _, end := range []error{ErrNodeRemoved, ErrNodeReplaced} {
		if errors.Is(runErr, end) {
			return end // the part's name adds nothing to it
		}
	}
	log.Info("ruche agent stopped; containers keep running and are adopted at the next start")
	return runErr
}

func loadIdentity(dir string) (*Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil {
		return nil, err
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("read %s: %w", identityFile, err)
	}
	if id.NodeID == "" || len(id.Managers) == 0 {
		return nil, fmt.Errorf("%s: node_id and managers are required", filepath.Join(dir, identityFile))
	}
	return &id, nil
}

// Join makes the machine a node of the cluster at cfg.Join: it fetches the
// cluster CA and checks it against cfg.CAHash, sends the token and a
// certificate request over TLS verified with that CA, and saves the
// identity in cfg.DataDir. The token is sent only to a manager that proved
// it holds a certificate of that CA.
func Join(ctx context.Context, cfg AgentConfig) (*Identity, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.Join)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--join %q: expected https://HOST:PORT", cfg.Join)
	}
	base := u.Scheme + "://" + u.Host
	if cfg.Token == "" {
		return nil, errors.New("--join needs --token (made with `ruche token create` on a manager)")
	}
	ca, caPEM, local, err := fetchCA(ctx, base)
	if err != nil {
		return nil, err
	}
	got := client.CAHash(ca)
	if cfg.CAHash == "" {
		log.Warn("no --ca-hash given: trusting the manager's CA on first use; compare its hash with `ruche token create` on a manager",
			"ca_hash", got)
	} else if !strings.EqualFold(strings.TrimPrefix(cfg.CAHash, "sha256:"), strings.TrimPrefix(got, "sha256:")) {
		return nil, fmt.Errorf("the manager's cluster CA (%s) does not match --ca-hash %s: wrong manager, or someone in between", got, cfg.CAHash)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	addr := cfg.AdvertiseAddr
	if addr == "" {
		addr = local // the address this machine reaches the manager from
	}
	name := cfg.NodeName
	host, _ := os.Hostname()
	if name == "" {
		name = nodeName(host)
	}
	csr, keyPEM, err := pki.NewNodeKey(name)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(client.JoinRequest{Token: cfg.Token, NodeName: name, Hostname: host, Labels: cfg.Labels, Addr: addr, CSR: string(csr)})
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, VerifyConnection: pki.VerifyAPIServer}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/join", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		var herr x509.HostnameError
		if errors.As(err, &herr) {
			return nil, fmt.Errorf("join: the manager's certificate does not cover %s: start the manager with --advertise-addr %s (%w)", u.Hostname(), u.Hostname(), err)
		}
		return nil, fmt.Errorf("join: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e client.Error
		json.Unmarshal(b, &e)
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, ErrJoinRefused
		}
		if e.Message == "" {
			e.Message = resp.Status
		}
		return nil, fmt.Errorf("join refused: %s", strings.TrimPrefix(e.Message, "join refused: "))
	}
	var jr client.JoinResponse
	if err := json.Unmarshal(b, &jr); err != nil {
		return nil, fmt.Errorf("join: decode answer: %w", err)
	}
	if _, err := tls.X509KeyPair([]byte(jr.Cert), keyPEM); err != nil {
		return nil, fmt.Errorf("join: the certificate the manager sent does not fit the node key: %w", err)
	}
	// The URL that worked first: the manager's own list may name addresses
	// this machine cannot reach (a single manager without --advertise-addr).
	managers := []string{base}
	for _, m := range jr.Managers {
		if !slices.Contains(managers, m) {
			managers = append(managers, m)
		}
	}
	id := &Identity{NodeID: jr.NodeID, ClusterID: jr.ClusterID, Managers: managers, AdvertiseAddr: addr,
		Networks: jr.Networks, PrivateRange: jr.PrivateRange}
	if err := saveIdentity(cfg.DataDir, id, []byte(jr.Cert), keyPEM, caPEM); err != nil {
		return nil, err
	}
	log.Info("joined the cluster", "node", id.NodeID, "cluster", id.ClusterID, "ca_hash", got, "advertise_addr", addr)
	return id, nil
}

// fetchCA reads the cluster CA from the manager, before trusting it: the
// caller checks it against the pin. It also returns the local IP address of
// the connection: the address the manager sees this machine at.
func fetchCA(ctx context.Context, base string) (ca *x509.Certificate, caPEM []byte, local string, err error) {
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // checked against --ca-hash by the caller; the join itself is verified
	}}
	defer hc.CloseIdleConnections()
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if a, ok := info.Conn.LocalAddr().(*net.TCPAddr); ok {
			local = a.IP.String()
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, base+"/v1/join/ca", nil)
	if err != nil {
		return nil, nil, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, "", fmt.Errorf("reach the manager at %s: %w", base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, nil, "", fmt.Errorf("cluster CA from %s: %s", base, resp.Status)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, "", fmt.Errorf("cluster CA from %s: not a PEM certificate", base)
	}
	ca, err = x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		return nil, nil, "", fmt.Errorf("cluster CA from %s: not a CA certificate", base)
	}
	return ca, b, local, nil
}

func saveIdentity(dir string, id *Identity, certPEM, keyPEM, caPEM []byte) error {
	b, _ := json.MarshalIndent(id, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{nodeKeyFile, keyPEM, 0o600},
		{nodeCertFile, certPEM, 0o644},
		{caCertFile, caPEM, 0o644},
		{identityFile, append(b, '\n'), 0o600}, // last: its presence means "joined"
	} {
		path := filepath.Join(dir, f.name)
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return fmt.Errorf("save %s: %w", f.name, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("save %s: %w", f.name, err)
		}
	}
	return nil
}
