package daemon

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

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

// openStore starts the embedded etcd in <data-dir>/store, or connects to
// the external cluster.
func openStore(ctx context.Context, cfg Config) (store.Server, error) {
	if len(cfg.Store.Endpoints) > 0 {
		return store.ConnectExternal(ctx, store.ExternalConfig{Endpoints: cfg.Store.Endpoints,
			CAFile: cfg.Store.CAFile, CertFile: cfg.Store.CertFile, KeyFile: cfg.Store.KeyFile})
	}
	return store.StartEmbedded(store.EmbeddedConfig{
		Dir: filepath.Join(cfg.DataDir, "store"), Name: cfg.NodeID,
		ClientAddr: cfg.StoreAddr, PeerAddr: cfg.StorePeerAddr, QuotaBytes: cfg.Store.Quota,
	})
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
