// Package daemon wires ruche's parts together in one place (as Tailscale's
// tsd does): `ruche up` is a manager (store, API, controllers) and an agent
// in one process. Every dependency is built here and passed down
// explicitly; no package reaches for a global.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/apiserver"
	"github.com/ruche-platform/ruche/internal/controller"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/nodeapi"
	"github.com/ruche-platform/ruche/internal/nodes"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/privnet"
	"github.com/ruche-platform/ruche/internal/runtime/docker"
	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
)

// Config is what `ruche up` takes.
type Config struct {
	DataDir string
	APIAddr string // default 127.0.0.1:7443
	// AdvertiseAddr is the IP address other machines reach this manager
	// (and its node) at; empty: a single node. Agents join through
	// https://<AdvertiseAddr>:<API port>.
	AdvertiseAddr string
	// NodeAPIAddr is where this manager serves the node API to the other
	// managers (its replicas' logs, drains of its proxy); default
	// <AdvertiseAddr>:7444 when AdvertiseAddr is set, else none.
	NodeAPIAddr string
	Ingress     IngressConfig
	// StoreAddr and StorePeerAddr are the embedded etcd's loopback
	// listeners (defaults 127.0.0.1:7479 and :7480).
	StoreAddr, StorePeerAddr string
	NodeID                   string // default: the host name
	Labels                   map[string]string
	DockerHost               string           // default: DOCKER_HOST, else the default socket
	ContainerLogs            docker.LogLimits // bounds of the replicas' log files
	Version                  string
	Log                      *slog.Logger
	// Heartbeat is the node health timing (interval, down after).
	Heartbeat nodes.Config
	// Store is the store's quota, or an external etcd to use instead of
	// the embedded one.
	Store StoreConfig
	// Join, Token and CAHash make this manager join the cluster of the
	// manager at Join on its first start (`ruche server --join`, `ruche
	// up --join`; managers.go). Later starts ignore them.
	Join, Token, CAHash string
	// NoAgent runs a manager without the agent (`ruche server`).
	NoAgent bool
	// Net is the replicas' networks (privnet.go).
	Net NetworksConfig
	// StoreHeartbeatMs and StoreElectionMs are the embedded etcd's raft
	// timing (0: etcd's 100 and 1000 ms).
	StoreHeartbeatMs, StoreElectionMs uint
}

// Up runs the platform until ctx ends. Containers keep running after it
// returns; the next Up adopts them.
func Up(ctx context.Context, cfg Config) error {
	log := cfg.Log
	if cfg.APIAddr == "" {
		cfg.APIAddr = "127.0.0.1:7443"
	}
	host, _ := os.Hostname()
	if cfg.NodeAPIAddr == "" && cfg.AdvertiseAddr != "" {
		cfg.NodeAPIAddr = net.JoinHostPort(cfg.AdvertiseAddr, nodeapi.DefaultPort)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = nodeName(host)
	}
	if err := checkStoreAddrs(cfg); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	if cfg.Join != "" {
		if exists(filepath.Join(cfg.DataDir, "store", "member")) {
			log.Info("this data dir already holds a store member: --join and --token are ignored", "data_dir", cfg.DataDir)
		} else if err := joinManager(ctx, &cfg); err != nil {
			return err
		}
	}
	extra, err := prepareStore(cfg)
	if err != nil {
		return err
	}
	st, err := openStoreWith(ctx, cfg, extra)
	if err != nil {
		return err
	}
	defer st.Close()
	if extra.initialCluster != "" {
		os.Remove(filepath.Join(cfg.DataDir, storeJoinFile)) // the member exists now
	}
	if extra.peerTLS != nil {
		fixPeerURL(ctx, st, log)
	}
	if err := checkKeys(ctx, st, cfg.DataDir); err != nil {
		return err
	}
	clusterID, newCluster, err := ensureCluster(ctx, st, extra.newClusterID)
	if err != nil {
		return err
	}
	if err := clusterNetworks(ctx, st, &cfg.Net, newCluster, log); err != nil { // netmode.go
		return err
	}
	box, err := secret.LoadOrCreate(filepath.Join(cfg.DataDir, "secret.key"))
	if err != nil {
		return err
	}
	ca, err := pki.LoadOrCreateCA(filepath.Join(cfg.DataDir, "pki"), clusterID)
	if err != nil {
		return err
	}
	apiHost, _, err := net.SplitHostPort(cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("--api-addr %q: %w", cfg.APIAddr, err)
	}
	hosts := []string{"127.0.0.1", "::1", "localhost", host}
	if apiHost != "" && apiHost != "0.0.0.0" && apiHost != "::" {
		hosts = append(hosts, apiHost)
	}
	if cfg.AdvertiseAddr != "" {
		hosts = append(hosts, cfg.AdvertiseAddr)
	}
	cert, err := ca.ServerCert(filepath.Join(cfg.DataDir, "pki"), hosts)
	if err != nil {
		return fmt.Errorf("api certificate: %w", err)
	}
	apiPair := pki.NewKeypair(cert)
	mcert, err := nodeapi.ManagerCert(ca, cfg.NodeID)
	if err != nil {
		return fmt.Errorf("manager certificate: %w", err)
	}
	nodePair := pki.NewKeypair(mcert) // for the node API, beats and the store's peers
	var peerAdvertise string
	if extra.peerTLS != nil {
		peerAdvertise = cfg.AdvertiseAddr
	}
	certRenewer := &managerCertRenewer{certs: managerCerts(ca, cfg.DataDir, hosts, apiPair, cfg.NodeID, nodePair, peerAdvertise),
		log: log.With("component", "managercerts")}
	confPath := filepath.Join(cfg.DataDir, "admin.conf")
	if err := ensureAdmin(ctx, st, confPath, apiURL(cfg.APIAddr), string(ca.CertPEM)); err != nil {
		return err
	}

	rt, err := openDocker(ctx, cfg.DockerHost, cfg.ContainerLogs)
	if err != nil {
		return err
	}
	defer rt.Close()
	reg := newRegistry()
	rec := events.NewRecorder(st, log)
	housekeeper := storeHousekeeping(st, log, reg)

	var ing *ingress
	if cfg.Ingress.HTTPAddr != "" || cfg.Ingress.HTTPSAddr != "" {
		if ing, err = newIngress(cfg.Ingress, cfg.NodeID, st, ca, box, log, reg); err != nil {
			return err
		}
	}
	var drainer agent.Drainer
	if ing != nil {
		drainer = ing.proxy
	}
	tracker := nodes.NewTracker(cfg.Heartbeat)
	localConn := agent.NewLocalConn(st, box)
	localConn.Beats = tracker
	localConn.Beats = newBeatRelay(tracker, st, managerURLs(cfg.APIAddr, cfg.AdvertiseAddr)[0], ca, nodePair, log) // beats.go
	// A stopping replica is drained from every node's proxy: the other
	// nodes' through their node API (drain.go).
	clusterDrain := nodeapi.NewClusterDrain(nodeapi.ClusterDrainConfig{LocalNode: cfg.NodeID},
		nodeapi.ClusterDrainDeps{Store: st, Local: drainer, Remote: nodeapi.NewKeypairClient(nodePair, ca.Pool()), Log: log})
	var ag *agent.Agent
	var pn *privnet.Manager
	var initBin string
	var netParts *privnetParts
	switch {
	case cfg.Net.Mode != NetworksRuche:
	case cfg.NoAgent:
		if netParts, err = openServerMesh(cfg.Net, cfg.DataDir, cfg.NodeID, cfg.AdvertiseAddr, localConn, log); err != nil {
			return err
		}
	default:
		if netParts, err = openPrivnet(cfg.Net, cfg.DataDir, cfg.NodeID, cfg.AdvertiseAddr, localConn, log); err != nil {
			return err
		}
		pn, initBin = netParts.pn, netParts.initBin
	}
	if netParts != nil {
		defer netParts.close(log)
	}
	if !cfg.NoAgent {
		var others drainOthers
		if cfg.AdvertiseAddr != "" { // other nodes may join
			others = func(ctx context.Context, task string) error { return clusterDrain.Drain(ctx, task, cfg.NodeID) }
		}
		ag = agent.New(agent.Config{NodeID: cfg.NodeID, ClusterID: clusterID, Hostname: host, DataDir: filepath.Join(cfg.DataDir, "agent"), Labels: cfg.Labels,
			AdvertiseAddr: cfg.AdvertiseAddr, NodeAPIAddr: cfg.NodeAPIAddr},
			agent.Deps{Runtime: rt, Conn: localConn, Log: log, Metrics: reg, Events: rec, Drainer: crossNodeDrainer(drainer, others, drainTimeout(cfg.Ingress), log),
				Networks: pn, InitBinary: initBin})
	}
	logs := newClusterLogs(ca, nodePair, cfg.NodeID, st, ag, log)
	ctlCfg := controller.Config{}
	if len(cfg.Store.Endpoints) == 0 {
		// The embedded etcd takes 4,096 operations per transaction
		// (store/embedded.go), an external one 128 unless told otherwise:
		// batch scheduling writes by 1,000 (bench/scheduler, issue 4).
		ctlCfg.MaxTxnOps = 1000
	}
	ctl := controller.New(ctlCfg, controller.Deps{Store: st, Log: log, Metrics: reg, Events: rec, Loads: tracker})
	monitor := nodes.NewMonitor(nodes.MonitorDeps{Store: st, Tracker: tracker, Events: rec, Log: log})
	defaultTLS := client.TLSNone
	if cfg.Ingress.acmeOn() {
		defaultTLS = client.TLSACME
	}
	var agentCerts apiserver.AgentCerts // the routes' certificates for agent nodes' ingress
	if ing != nil {
		agentCerts = ing.certs
	}
	api := apiserver.New(apiserver.Config{Version: cfg.Version, ClusterID: clusterID, ManagerName: cfg.NodeID, APIAddr: cfg.APIAddr, DefaultTLS: defaultTLS,
		ManagerURLs: managerURLs(cfg.APIAddr, cfg.AdvertiseAddr)},
		apiserver.Deps{
			Heartbeats: tracker,
			Store:      st, Secrets: box, CA: ca, Opener: box, Checker: localChecker{rt}, Logs: logs, Events: rec, Log: log, Registry: reg,
			StoreStatus: st.StoreStatus, Backup: backupSource(st, cfg.DataDir, clusterID, cfg.Version),
			AgentCerts: agentCerts,
			Drain:      clusterDrain,
			Managers:   &managers{st: st, dataDir: cfg.DataDir, self: cfg.NodeID, log: log},
		})

	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	srv := &http.Server{
		Handler:           api.Handler(),
		TLSConfig:         apiTLSConfig(apiPair, ca),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	ps := newParts(ctx)
	run := ps.run
	if ing != nil {
		ing.run(ctx, run)
	}
	if ag != nil {
		run("agent", func() error { return ag.Run(ctx) })
	}
	if netParts != nil {
		run("mesh", func() error { return netParts.loop.Run(ctx) })
	}
	if cfg.NodeAPIAddr != "" {
		// The node API for the other managers, with this manager's own
		// node certificate (renewed in memory): its replicas' logs and
		// drains of its proxy. Without it, only those are lost.
		napi := nodeapi.New(nodeapi.Config{Addr: cfg.NodeAPIAddr, GetCertificate: nodePair.GetCertificate, CA: ca.Pool()},
			nodeapi.Deps{Logs: agentLogs(ag), Drainer: drainer, Log: log})
		run("node-api", func() error {
			if err := napi.Run(ctx); err != nil {
				log.Error("node api stopped; other managers cannot show this node's logs or ask its proxy to drain", "err", err)
			}
			return nil
		})
	}
	mrec := store.ManagerRecord{Name: cfg.NodeID, APIURL: managerURLs(cfg.APIAddr, cfg.AdvertiseAddr)[0],
		NodeAPIAddr: nodeapi.Reachable(cfg.NodeAPIAddr, cfg.AdvertiseAddr)}
	if em, ok := st.(*store.Embedded); ok {
		mrec.PeerURL, mrec.MemberID = em.PeerURL(), em.MemberID()
	}
	run("manager-record", func() error { return publishManager(ctx, st, mrec, confPath, log) })
	run("api-nodes", func() error { return api.Run(ctx) })
	run("manager-certs", func() error { return certRenewer.run(ctx) })
	run("controller", func() error {
		return st.RunElected(ctx, "controller", cfg.NodeID, func(ctx context.Context) {
			log.Info("leading: controllers started")
			monDone := make(chan struct{})
			go func() { defer close(monDone); monitor.Run(ctx) }()
			if err := ctl.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("controller stopped", "err", err)
			}
			<-monDone
			log.Info("not leading any more: controllers stopped")
		})
	})
	run("store-housekeeping", func() error {
		return st.RunElected(ctx, "store-housekeeping", cfg.NodeID, func(ctx context.Context) {
			if em, ok := st.(*store.Embedded); ok {
				go em.ReapUnstartedLearners(ctx, store.UnstartedLearnerTimeout, func(peerURL string) {
					log.Warn("store member removed: added for a joining manager that never started it", "peer_url", peerURL,
						"after", store.UnstartedLearnerTimeout)
					rec.Record(ctx, client.Event{Type: "manager", Action: "removed", Message: "store member at " + peerURL + " never started"})
				})
			}
			housekeeper.Run(ctx)
		})
	})
	run("api", func() error {
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	log.Info("ruche is up", "api", apiURL(cfg.APIAddr), "node", cfg.NodeID, "admin_config", confPath, "data_dir", cfg.DataDir,
		"http", cfg.Ingress.HTTPAddr, "https", cfg.Ingress.HTTPSAddr)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-ps.failed():
	case err := <-st.Err():
		runErr = fmt.Errorf("store: %w", err)
	}
	stop()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Shutdown(sctx)
	scancel()
	ps.wait()
	log.Info("ruche stopped; containers keep running and are adopted at the next start")
	return runErr
}

// managerURLs are the URLs agents join and talk to: the advertise address
// when there is one, else the API address.
func managerURLs(apiAddr, advertise string) []string {
	if advertise == "" {
		return []string{apiURL(apiAddr)}
	}
	_, port, _ := net.SplitHostPort(apiAddr)
	return []string{"https://" + net.JoinHostPort(advertise, port)}
}

// apiTLSConfig serves the API certificate held by pair (renewed while the
// manager runs, managercerts.go) and verifies client (node) certificates
// when given: the agent API under /v1/agent/ requires one, the CLI API a
// token.
func apiTLSConfig(pair *pki.Keypair, ca *pki.CA) *tls.Config {
	c := &tls.Config{GetCertificate: pair.GetCertificate, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	c.ClientCAs = ca.Pool()
	c.ClientAuth = tls.VerifyClientCertIfGiven
	return c
}

func apiURL(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// nodeName makes a host name usable as a node ID and store key element.
func nodeName(host string) string {
	host = strings.ToLower(strings.SplitN(host, ".", 2)[0])
	var b strings.Builder
	for _, r := range host {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "node1"
	}
	return b.String()
}

// lockDataDir makes sure only one `ruche up` uses a data directory.
func lockDataDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another ruche (%w)", dir, err)
	}
	return func() { f.Close() }, nil
}

// ensureCluster reads the cluster's ID, or records a new cluster with
// newID (random when empty); created says which.
func ensureCluster(ctx context.Context, st store.Store, newID string) (id string, created bool, err error) {
	var rec store.ClusterRecord
	if _, err := store.GetJSON(ctx, st, store.ClusterKey, &rec); err == nil {
		return rec.ID, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", false, err
	}
	if newID == "" {
		newID = randomHex(8)
	}
	rec = store.ClusterRecord{ID: newID, Created: time.Now().UTC()}
	if _, err := st.Txn(ctx, []store.Cmp{store.ModRevisionIs(store.ClusterKey, 0)}, store.Put(store.ClusterKey, store.Encode(rec))); err != nil {
		return "", false, fmt.Errorf("create cluster record: %w", err)
	}
	return rec.ID, true, nil
}

// ensureAdmin keeps the admin config if its token is still valid, else
// makes a new admin token and writes the config (mode 0600).
func ensureAdmin(ctx context.Context, st store.Store, path, server, caPEM string) error {
	if cfg, err := client.LoadConfig(path); err == nil {
		if _, err := st.Get(ctx, store.TokenKey(apiserver.HashToken(cfg.Token))); err == nil {
			if cfg.CA != caPEM || len(cfg.Servers) == 0 || cfg.Servers[0] != server {
				cfg.CA, cfg.Servers = caPEM, []string{server}
				return cfg.Write(path)
			}
			return nil
		}
	}
	token := "ruche_" + randomHex(24)
	rec := store.TokenRecord{Name: "admin", Role: "admin", Created: time.Now().UTC()}
	if _, err := st.Txn(ctx, nil, store.Put(store.TokenKey(apiserver.HashToken(token)), store.Encode(rec))); err != nil {
		return fmt.Errorf("store admin token: %w", err)
	}
	cfg := &client.Config{Servers: []string{server}, CA: caPEM, Token: token}
	if err := cfg.Write(path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
