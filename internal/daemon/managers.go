package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/apiserver"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// peerCN is the CommonName of the managers' etcd peer certificates, the
// only one the peer listener accepts: node names cannot hold a dot, so no
// agent's certificate carries it.
const peerCN = "etcd-peer.ruche"

// Files of a manager's store membership in its data dir.
const (
	peerCertFile   = "peer.crt" // under pki/
	peerKeyFile    = "peer.key"
	storeJoinFile  = "store-join.json"
	defaultPeerPrt = "7480"
)

// storeJoin is what a joining manager keeps between its join and the first
// start of its store member.
type storeJoin struct {
	InitialCluster string `json:"initial_cluster"`
}

// peerAddr is where the member listens for peers: loopback for a single
// manager without an advertise address (exactly as before), else the
// advertise address with the port of --store-peer-addr.
func peerAddr(cfg Config) string {
	addr := cfg.StorePeerAddr
	if addr == "" {
		addr = "127.0.0.1:" + defaultPeerPrt
	}
	if cfg.AdvertiseAddr == "" {
		return addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
		return net.JoinHostPort(cfg.AdvertiseAddr, port)
	}
	return addr
}

// prepareStore readies the embedded member's peer TLS (a manager with an
// advertise address) and, for a manager that joined, its initial cluster.
// The CA must exist before the store opens; on a brand-new cluster it is
// made here with a new cluster ID, which ensureCluster then records.
func prepareStore(cfg Config) (ec storeExtra, err error) {
	if len(cfg.Store.Endpoints) > 0 || cfg.AdvertiseAddr == "" {
		return ec, nil
	}
	pkiDir := filepath.Join(cfg.DataDir, "pki")
	_, caErr := os.Stat(filepath.Join(pkiDir, "ca.crt"))
	fresh := !exists(filepath.Join(cfg.DataDir, "store", "member"))
	switch {
	case caErr == nil:
	case errors.Is(caErr, os.ErrNotExist) && fresh:
		ec.newClusterID = randomHex(8)
	default:
		return ec, nil // checkKeys says what is missing
	}
	ca, err := pki.LoadOrCreateCA(pkiDir, ec.newClusterID)
	if err != nil {
		return ec, err
	}
	if err := writePeerCert(ca, pkiDir, cfg.AdvertiseAddr); err != nil {
		return ec, err
	}
	ec.peerTLS = &store.PeerTLS{CertFile: filepath.Join(pkiDir, peerCertFile), KeyFile: filepath.Join(pkiDir, peerKeyFile),
		CAFile: filepath.Join(pkiDir, "ca.crt"), AllowedCNs: []string{peerCN}}
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, storeJoinFile)); err == nil && fresh {
		var sj storeJoin
		if err := json.Unmarshal(b, &sj); err != nil {
			return ec, fmt.Errorf("%s: %w", storeJoinFile, err)
		}
		ec.initialCluster = sj.InitialCluster
	}
	return ec, nil
}

// writePeerCert signs the member's etcd peer certificate (client and
// server use at once, CommonName peerCN) and swaps it into pki/ atomically:
// etcd reads the files at every handshake, so a renewal needs no restart.
func writePeerCert(ca *pki.CA, pkiDir, advertise string) error {
	csr, key, err := pki.NewNodeKey(peerCN)
	if err != nil {
		return fmt.Errorf("store peer key: %w", err)
	}
	cert, _, err := ca.SignNode(csr, pki.NodeRequest{ID: peerCN, Role: pki.RoleManager, Names: []string{advertise, "127.0.0.1"}})
	if err != nil {
		return fmt.Errorf("store peer certificate: %w", err)
	}
	if err := pki.WritePair(filepath.Join(pkiDir, peerCertFile), filepath.Join(pkiDir, peerKeyFile), cert, key); err != nil {
		return fmt.Errorf("store peer certificate: %w", err)
	}
	return nil
}

// storeExtra is what prepareStore adds to the embedded store's config.
type storeExtra struct {
	peerTLS        *store.PeerTLS
	initialCluster string // a joined manager's first start
	newClusterID   string // the ID the CA was made for, on a new cluster
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// fixPeerURL makes the member advertise the peer URL it listens on: a
// manager that first ran without --advertise-addr registered a loopback
// peer URL, which other managers could not reach.
func fixPeerURL(ctx context.Context, st store.Server, log *slog.Logger) {
	m, ok := st.(*store.Embedded)
	if !ok {
		return
	}
	ms, err := m.Members(ctx)
	if err != nil {
		log.Warn("store members", "err", err)
		return
	}
	want := m.PeerURL()
	for _, mem := range ms {
		if mem.ID == m.MemberID() && !slices.Equal(mem.PeerURLs, []string{want}) {
			if err := m.SetPeerURL(ctx, mem.ID, want); err != nil {
				log.Warn("store member peer URL not updated", "want", want, "err", err)
				return
			}
			log.Info("store member peer URL updated", "from", mem.PeerURLs, "to", want)
		}
	}
}

// managers is the apiserver's view of the managers: the store's members
// and the records the managers publish (publishManager).
type managers struct {
	st      store.Server
	dataDir string
	self    string
	log     *slog.Logger
}

var _ apiserver.Managers = (*managers)(nil)

// Add adds the store member of a joining manager and reads the keys it
// needs from this manager's data dir.
func (m *managers) Add(ctx context.Context, name, peerURL string) (*client.ManagerJoin, error) {
	em, ok := m.st.(*store.Embedded)
	if !ok {
		return nil, apiserver.Conflict("this manager runs on an external etcd: start the new manager with the same --store-endpoints")
	}
	if !strings.HasPrefix(em.PeerURL(), "https://") {
		return nil, apiserver.Conflict("this manager's store listens for peers on loopback only: restart it with --advertise-addr, then join")
	}
	ms, err := em.Members(ctx)
	if err != nil {
		return nil, err
	}
	stale, err := joinCheck(ms, name, peerURL)
	if err != nil {
		return nil, err
	}
	caKey, err := os.ReadFile(filepath.Join(m.dataDir, "pki", "ca.key"))
	if err != nil {
		return nil, fmt.Errorf("read the CA key: %w", err)
	}
	secretKey, err := os.ReadFile(filepath.Join(m.dataDir, "secret.key"))
	if err != nil {
		return nil, fmt.Errorf("read the secret key: %w", err)
	}
	if stale != "" {
		if err := em.RemoveMember(ctx, stale); err != nil {
			return nil, fmt.Errorf("remove the learner of an earlier join from %s: %w", peerURL, err)
		}
		m.log.Info("store member of an earlier join removed (a learner; it never finished)", "member", stale, "peer_url", peerURL)
	}
	ic, err := em.AddMember(ctx, name, peerURL)
	if errors.Is(err, rpctypes.ErrGRPCUnhealthy) || errors.Is(err, rpctypes.ErrUnhealthy) {
		return nil, apiserver.Unavailable("the store cannot take a member yet (one joined moments ago, or one is down); retry")
	}
	if err != nil {
		return nil, err
	}
	m.log.Info("store member added", "member", name, "peer_url", peerURL, "initial_cluster", ic)
	return &client.ManagerJoin{CAKey: string(caKey), SecretKey: secretKey, InitialCluster: ic}, nil
}

// joinCheck decides whether a manager (name, peerURL) may join the store
// members ms. A voting member with its name or peer URL must be removed
// first (409). A learner at its peer URL is this machine's earlier join,
// which never finished (the joining side asks only when its data dir
// holds no member): stale names it, to remove before adding again; it
// does not vote, so the quorum is the same. Any other learner, or a
// member not started, is another manager joining: 503 (the joining side
// retries for a minute), saying how to remove it should it never finish.
func joinCheck(ms []store.Member, name, peerURL string) (stale string, err error) {
	for _, mem := range ms {
		ref := mem.Name
		if ref == "" && len(mem.PeerURLs) > 0 {
			ref = mem.PeerURLs[0] // not started: etcd knows no name yet
		}
		switch own := slices.Contains(mem.PeerURLs, peerURL); {
		case own && mem.Learner:
			stale = ref
		case own || mem.Name == name:
			return "", apiserver.Conflict(fmt.Sprintf("a store member named %q or at %s exists: remove it first with `ruche manager rm`", mem.Name, peerURL))
		case mem.Name == "" || mem.Learner:
			msg := fmt.Sprintf("another manager is joining (store member %s has not started or caught up yet); retry when it has, or remove it with `ruche manager rm %s`", ref, ref)
			if mem.Name == "" && mem.Learner {
				msg += fmt.Sprintf(" (the leading manager removes it by itself if it has not started after %v)", store.UnstartedLearnerTimeout)
			}
			return "", apiserver.Unavailable(msg)
		}
	}
	return stale, nil
}

// List joins the store members with the published manager records.
func (m *managers) List(ctx context.Context) ([]client.Manager, error) {
	kvs, _, err := m.st.List(ctx, store.ManagersPrefix)
	if err != nil {
		return nil, err
	}
	recs := map[string]store.ManagerRecord{}
	for _, kv := range kvs {
		var r store.ManagerRecord
		if store.Decode(kv, &r) == nil {
			recs[r.Name] = r
		}
	}
	leader, _ := electionLeader(ctx, m.st)
	var out []client.Manager
	seen := map[string]bool{}
	add := func(name string, member, learner bool, peer string) {
		r, alive := recs[name]
		if peer == "" {
			peer = r.PeerURL
		}
		out = append(out, client.Manager{Name: name, APIAddr: hostPort(r.APIURL), APIURL: r.APIURL, PeerURL: peer,
			Leader: name == leader, Healthy: alive, StoreMember: member, StoreLearner: learner, DBSize: r.DBSize})
		seen[name] = true
	}
	em, embedded := m.st.(*store.Embedded)
	if embedded {
		ms, err := em.Members(ctx)
		if err != nil {
			return nil, err
		}
		storeLeader := em.Leader(ctx)
		for _, mem := range ms {
			name := mem.Name
			if name == "" {
				name = "(starting)"
			}
			var peer string
			if len(mem.PeerURLs) > 0 {
				peer = mem.PeerURLs[0]
			}
			add(name, true, mem.Learner, peer)
			out[len(out)-1].StoreLeader = mem.ID == storeLeader
		}
	}
	for name := range recs {
		if !seen[name] {
			add(name, !embedded, false, "")
		}
	}
	slices.SortFunc(out, func(a, b client.Manager) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func hostPort(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return ""
}

func electionLeader(ctx context.Context, st store.Server) (string, error) {
	type leaderer interface {
		ElectionLeader(ctx context.Context, name string) (string, error)
	}
	if l, ok := st.(leaderer); ok {
		return l.ElectionLeader(ctx, "controller")
	}
	return "", nil
}

// Remove takes a manager out of the store membership. Its member stops
// (etcd tells a removed member so) and so does its ruche.
func (m *managers) Remove(ctx context.Context, name string, force bool) error {
	em, ok := m.st.(*store.Embedded)
	if !ok {
		return apiserver.Conflict("on an external etcd, stop the manager instead: its membership is the etcd cluster's")
	}
	ms, err := m.List(ctx)
	if err != nil {
		return err
	}
	if err := canRemove(ms, name, force); err != nil {
		return err
	}
	if err := em.RemoveMember(ctx, name); errors.Is(err, rpctypes.ErrGRPCUnhealthy) || errors.Is(err, rpctypes.ErrUnhealthy) {
		return apiserver.Unavailable("the store refuses to remove a member now (one joined or came back less than 5 s ago); retry")
	} else if err != nil {
		return err
	}
	// The member is out: what follows is tidying. The record is on its
	// manager's lease and goes within seconds anyway. A manager removing
	// itself cannot write any more (its member stopped once the removal
	// was applied), and after removing the store's leader a write may
	// meet the election: neither may turn a done removal into an error.
	if name == m.self {
		return nil
	}
	if _, err := m.st.Txn(ctx, nil, store.Delete(store.ManagerKey(name))); err != nil {
		m.log.Warn("manager removed; its record stays until its lease ends", "manager", name, "err", err)
	}
	return nil
}

// canRemove says whether name may leave the store membership ms: never
// the last member; without force, not when fewer healthy members than a
// quorum would remain, nor an even number (which tolerates no more
// failures than one fewer).
func canRemove(ms []client.Manager, name string, force bool) error {
	var members, healthyLeft int
	found := false
	for _, mm := range ms {
		if !mm.StoreMember {
			continue
		}
		// A member not started yet is named by its peer URL (List shows
		// it as "(starting)").
		if mm.Name == name || (mm.StoreLearner && mm.PeerURL == name) {
			found = true
			if mm.StoreLearner {
				return nil // a learner is not in the quorum
			}
		}
		if mm.StoreLearner {
			continue
		}
		members++
		if mm.Name != name && mm.Healthy {
			healthyLeft++
		}
	}
	if !found {
		return apiserver.NotFound(fmt.Sprintf("no manager %q among the store members", name))
	}
	if members == 1 {
		return apiserver.Conflict(fmt.Sprintf("%s is the last manager: removing it would remove the cluster", name))
	}
	left := members - 1
	if !force && healthyLeft < left/2+1 {
		return apiserver.Conflict(fmt.Sprintf("after removing %s, %d of %d managers would be healthy, fewer than a quorum (%d): the cluster would stop taking changes (--force to do it anyway)",
			name, healthyLeft, left, left/2+1))
	}
	if !force && left%2 == 0 {
		return apiserver.Conflict(fmt.Sprintf("removing %s leaves %d managers, which survive no more failures than %d would: add a manager first, or --force",
			name, left, left-1))
	}
	return nil
}

// publishManager keeps this manager's record under /ruche/managers/ on a
// lease (4 s, renewed) and refreshes its database size, and keeps the
// admin config's server list up to date with the live managers.
func publishManager(ctx context.Context, st store.Server, rec store.ManagerRecord, confPath string, log *slog.Logger) error {
	const ttl = 4 * time.Second // a dead manager shows unhealthy after about this long
	for ctx.Err() == nil {
		err := publishOnce(ctx, st, rec, ttl, confPath)
		if ctx.Err() != nil {
			break
		}
		log.Warn("manager record: retrying", "err", err)
		select {
		case <-time.After(250 * time.Millisecond): // absent, the manager shows unhealthy
		case <-ctx.Done():
		}
	}
	return nil
}

func publishOnce(ctx context.Context, st store.Server, rec store.ManagerRecord, ttl time.Duration, confPath string) error {
	cli := st.Client()
	lease, err := cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return fmt.Errorf("grant: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cli.Revoke(rctx, lease.ID)
		cancel()
	}()
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	// The keep-alive channel closes when the lease is lost (the store had
	// no quorum for longer than the TTL): publish again on a new one.
	alive, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return fmt.Errorf("keep alive: %w", err)
	}
	tick := time.NewTicker(10 * time.Second) // the database size; the lease renews itself
	defer tick.Stop()
	for {
		if em, ok := st.(*store.Embedded); ok {
			rec.DBSize, _ = em.DBSize()
		}
		rec.Updated = time.Now().UTC()
		if _, err := st.Txn(ctx, nil, store.PutWithLease(store.ManagerKey(rec.Name), store.Encode(rec), store.LeaseID(lease.ID))); err != nil {
			return err
		}
		refreshAdminServers(ctx, st, confPath, rec.APIURL)
	wait:
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case _, ok := <-alive:
				if !ok {
					return errors.New("the record's lease was lost")
				}
			case <-tick.C:
				break wait
			}
		}
	}
}

// refreshAdminServers lists every live manager in the admin config, this
// one first, so the CLI moves to another when one does not answer.
func refreshAdminServers(ctx context.Context, st store.Store, path, self string) {
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return
	}
	kvs, _, err := st.List(ctx, store.ManagersPrefix)
	if err != nil {
		return
	}
	servers := []string{cfg.Servers[0]}
	for _, kv := range kvs {
		var r store.ManagerRecord
		if store.Decode(kv, &r) == nil && r.APIURL != "" && !slices.Contains(servers, r.APIURL) {
			servers = append(servers, r.APIURL)
		}
	}
	if !slices.Equal(servers, cfg.Servers) {
		cfg.Servers = servers
		cfg.Write(path)
	}
}

// joinManager is the joining side of `ruche server --join`: like an
// agent's join (CA pinned before the token leaves), with a manager token
// and the store member's peer URL. It saves the CA with its key, the
// secret key, the manager's node certificate and the initial cluster in
// the data dir; the store member starts from them.
func joinManager(ctx context.Context, cfg *Config) error {
	log := cfg.Log
	u, err := url.Parse(cfg.Join)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--join %q: expected https://HOST:PORT", cfg.Join)
	}
	base := u.Scheme + "://" + u.Host
	if cfg.Token == "" {
		return errors.New("--join needs --token (made with `ruche token create --role manager` on a manager)")
	}
	ca, caPEM, local, err := fetchCA(ctx, base)
	if err != nil {
		return err
	}
	got := client.CAHash(ca)
	if cfg.CAHash == "" {
		log.Warn("no --ca-hash given: trusting the manager's CA on first use; compare its hash with `ruche token create` on a manager", "ca_hash", got)
	} else if !strings.EqualFold(strings.TrimPrefix(cfg.CAHash, "sha256:"), strings.TrimPrefix(got, "sha256:")) {
		return fmt.Errorf("the manager's cluster CA (%s) does not match --ca-hash %s: wrong manager, or someone in between", got, cfg.CAHash)
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = local
		log.Info("no --advertise-addr: using the address the manager is reached from", "advertise_addr", local)
	}
	_, peerPort, _ := net.SplitHostPort(peerAddr(*cfg))
	peerURL := "https://" + net.JoinHostPort(cfg.AdvertiseAddr, peerPort)
	// A member added that cannot start stays a learner the managers must
	// remove: make sure it can listen before asking.
	for _, a := range []string{peerAddr(*cfg), cfg.StoreAddr} {
		if a == "" {
			continue
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("the store cannot listen on %s, so this machine would not join: %w", a, err)
		}
		ln.Close()
	}
	csr, keyPEM, err := pki.NewNodeKey(cfg.NodeID)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	body, _ := json.Marshal(client.JoinRequest{Token: cfg.Token, NodeName: cfg.NodeID, Hostname: host, Addr: cfg.AdvertiseAddr, CSR: string(csr), PeerURL: peerURL})
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, VerifyConnection: pki.VerifyAPIServer}}}
	defer hc.CloseIdleConnections()
	// The store refuses a member while another joined moments ago (etcd's
	// strict reconfiguration check): retry for a minute.
	var resp *http.Response
	var b []byte
	for deadline := time.Now().Add(time.Minute); ; {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/join", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err = hc.Do(req)
		if err != nil {
			return fmt.Errorf("join: %w", err)
		}
		b, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		log.Info("the managers' store cannot take a member yet; retrying", "in", "2s")
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if resp.StatusCode != http.StatusOK {
		var e client.Error
		json.Unmarshal(b, &e)
		if resp.StatusCode == http.StatusUnauthorized {
			return ErrJoinRefused
		}
		if e.Message == "" {
			e.Message = resp.Status
		}
		return fmt.Errorf("join refused: %s", strings.TrimPrefix(e.Message, "join refused: "))
	}
	var jr client.JoinResponse
	if err := json.Unmarshal(b, &jr); err != nil || jr.Manager == nil {
		return errors.New("join: the answer is not a manager's (is the token a manager token?)")
	}
	if _, err := tls.X509KeyPair([]byte(jr.Cert), keyPEM); err != nil {
		return fmt.Errorf("join: the certificate the manager sent does not fit the node key: %w", err)
	}
	if _, err := tls.X509KeyPair(caPEM, []byte(jr.Manager.CAKey)); err != nil {
		return fmt.Errorf("join: the CA key the manager sent does not fit its CA: %w", err)
	}
	pkiDir := filepath.Join(cfg.DataDir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return fmt.Errorf("pki dir: %w", err)
	}
	sj, _ := json.Marshal(storeJoin{InitialCluster: jr.Manager.InitialCluster})
	for _, f := range []struct {
		path string
		data []byte
	}{
		{filepath.Join(pkiDir, "ca.key"), []byte(jr.Manager.CAKey)},
		{filepath.Join(pkiDir, "ca.crt"), caPEM},
		{filepath.Join(pkiDir, "manager.crt"), []byte(jr.Cert)},
		{filepath.Join(pkiDir, "manager.key"), keyPEM},
		{filepath.Join(cfg.DataDir, "secret.key"), jr.Manager.SecretKey},
		{filepath.Join(cfg.DataDir, storeJoinFile), sj}, // last: the store starts from it
	} {
		if err := os.WriteFile(f.path+".tmp", f.data, 0o600); err != nil {
			return fmt.Errorf("save %s: %w", filepath.Base(f.path), err)
		}
		if err := os.Rename(f.path+".tmp", f.path); err != nil {
			return fmt.Errorf("save %s: %w", filepath.Base(f.path), err)
		}
	}
	log.Info("joined as a manager", "manager", cfg.NodeID, "cluster", jr.ClusterID, "ca_hash", got, "peer_url", peerURL)
	return nil
}
