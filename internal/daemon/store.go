package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
	"github.com/ruche-platform/ruche/internal/store/backup"
)

// StoreConfig chooses and tunes the store of a manager.
type StoreConfig struct {
	// Quota is the embedded etcd's backend quota in bytes (default 2 GiB).
	Quota int64
	// Endpoints, when set, are the client URLs of an external etcd cluster
	// used instead of the embedded one (--store-endpoints), with optional
	// TLS files.
	Endpoints                 []string
	CAFile, CertFile, KeyFile string
}

// checkStoreAddrs refuses embedded store listeners other machines could
// reach without authentication: the client listener is plain HTTP with no
// authentication (this process is its only client), and so is the peer
// listener of a manager without --advertise-addr (with it, peers use
// mutual TLS on the advertise address). Whoever reaches either reads the
// store and writes it: an admin token record is one write away.
func checkStoreAddrs(cfg Config) error {
	if len(cfg.Store.Endpoints) > 0 {
		return nil
	}
	check := func(flag, addr string) error {
		if addr == "" {
			return nil // the default, on loopback
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("%s %q: %w", flag, addr, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%s %q: the embedded store listens on loopback only (127.0.0.1 or ::1): it has no authentication there", flag, addr)
		}
		return nil
	}
	if err := check("--store-addr", cfg.StoreAddr); err != nil {
		return err
	}
	if cfg.AdvertiseAddr == "" {
		return check("--store-peer-addr", cfg.StorePeerAddr)
	}
	return nil
}

// openStore starts the embedded etcd in <data-dir>/store, or connects to
// the external cluster.
func openStore(ctx context.Context, cfg Config) (store.Server, error) {
	return openStoreWith(ctx, cfg, storeExtra{})
}

// openStoreWith also takes the peer TLS and join of a manager that has
// other managers (managers.go).
func openStoreWith(ctx context.Context, cfg Config, extra storeExtra) (store.Server, error) {
	peer := cfg.StorePeerAddr
	if extra.peerTLS != nil {
		peer = peerAddr(cfg)
	}
	if len(cfg.Store.Endpoints) > 0 {
		return store.ConnectExternal(ctx, store.ExternalConfig{Endpoints: cfg.Store.Endpoints,
			CAFile: cfg.Store.CAFile, CertFile: cfg.Store.CertFile, KeyFile: cfg.Store.KeyFile})
	}
	em, err := store.StartEmbedded(store.EmbeddedConfig{
		Dir: filepath.Join(cfg.DataDir, "store"), Name: cfg.NodeID,
		ClientAddr: cfg.StoreAddr, PeerAddr: peer, QuotaBytes: cfg.Store.Quota,
		PeerTLS: extra.peerTLS, InitialCluster: extra.initialCluster, Existing: extra.initialCluster != "",
		HeartbeatMs: cfg.StoreHeartbeatMs, ElectionMs: cfg.StoreElectionMs, Log: cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	if err := promote(ctx, em, cfg.Log); err != nil {
		em.Close()
		return nil, err
	}
	return em, nil
}

// promoteTimeout bounds the wait of a joined member, a learner, for its
// promotion to a voting member (it must catch up with the leader's log).
const promoteTimeout = 2 * time.Minute

// promote makes a joined manager's store member, added as a learner
// (managers.Add), a voting member once it has caught up. A manager that
// stopped before its promotion is promoted at its next start.
func promote(ctx context.Context, em *store.Embedded, log *slog.Logger) error {
	if !em.IsLearner() {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Info("store member started as a learner; promoting it once it has caught up")
	ctx, cancel := context.WithTimeout(ctx, promoteTimeout)
	defer cancel()
	if err := em.Promote(ctx); err != nil {
		return fmt.Errorf("the store member joined but is still a learner (remove it with `ruche manager rm`, or start again to retry): %w", err)
	}
	log.Info("store member promoted: it votes")
	return nil
}

// storeHousekeeping registers the store's size metrics and returns the
// housekeeper the leader runs.
func storeHousekeeping(st store.Server, log *slog.Logger, reg *prometheus.Registry) *store.Housekeeper {
	reg.MustRegister(store.NewUsageCollector(st))
	return store.NewHousekeeper(store.HousekeeperConfig{}, st, log, reg)
}

// backupSource makes backups of this manager: the store's snapshot with
// the CA and secret key of its data dir. The snapshot is staged in the data
// dir (the store's disk), not in /tmp, which may be a small tmpfs.
func backupSource(st store.Server, dataDir, clusterID, version string) *backup.Source {
	return &backup.Source{Store: st, ClusterID: clusterID, Version: version, TempDir: dataDir,
		CACertFile: filepath.Join(dataDir, "pki", "ca.crt"), CAKeyFile: filepath.Join(dataDir, "pki", "ca.key"),
		SecretKeyFile: filepath.Join(dataDir, "secret.key")}
}

// checkKeys refuses to run a manager on a store whose cluster it has no
// keys for: a data dir without secret.key or the CA in front of an existing
// cluster (typically a second manager pointed at the same external etcd)
// would make its own, seal new secrets with a key the other managers do
// not have, and issue certificates nobody trusts. With a secret key, the
// first sealed secret in the store must open with it.
func checkKeys(ctx context.Context, st store.Store, dataDir string) error {
	var rec store.ClusterRecord
	if _, err := store.GetJSON(ctx, st, store.ClusterKey, &rec); errors.Is(err, store.ErrNotFound) {
		return nil // a new cluster: its keys are made now
	} else if err != nil {
		return err
	}
	keyPath := filepath.Join(dataDir, "secret.key")
	for _, p := range []string{keyPath, filepath.Join(dataDir, "pki", "ca.crt"), filepath.Join(dataDir, "pki", "ca.key")} {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("the store holds cluster %s but %s is missing: copy secret.key and pki/ca.* from a manager of that cluster "+
				"(or restore a backup with `ruche backup restore`)", rec.ID, p)
		}
	}
	box, err := secret.LoadOrCreate(keyPath)
	if err != nil {
		return err
	}
	kvs, _, err := st.List(ctx, store.SecretsPrefix)
	if err != nil || len(kvs) == 0 {
		return err
	}
	var sr store.SecretRecord
	if err := store.Decode(kvs[0], &sr); err != nil {
		return err
	}
	if _, err := box.Open(sr.Sealed); err != nil {
		return fmt.Errorf("%s does not open the secrets of cluster %s (%s): it belongs to another cluster", keyPath, rec.ID, kvs[0].Key)
	}
	return nil
}
