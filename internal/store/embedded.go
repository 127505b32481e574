package store

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

// EmbeddedConfig configures the embedded single-member etcd of `ruche up`.
type EmbeddedConfig struct {
	Dir        string // etcd's data directory
	Name       string // member name
	ClientAddr string // loopback host:port for etcd clients (default 127.0.0.1:7479)
	PeerAddr   string // loopback host:port for peers (default 127.0.0.1:7480)
	QuotaBytes int64  // backend quota (default 2 GiB)
	LogFile    string // where etcd's own log goes (default <Dir>/etcd.log)
}

// Embedded is a running embedded etcd member and a Store on it.
type Embedded struct {
	*Etcd
	e         *embed.Etcd
	closeOnce sync.Once
}

// StartEmbedded starts etcd in this process and waits until it serves.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.ClientAddr == "" {
		cfg.ClientAddr = "127.0.0.1:7479"
	}
	if cfg.PeerAddr == "" {
		cfg.PeerAddr = "127.0.0.1:7480"
	}
	if cfg.Name == "" {
		cfg.Name = "ruche"
	}
	if cfg.QuotaBytes == 0 {
		cfg.QuotaBytes = 2 << 30
	}
	if cfg.LogFile == "" {
		cfg.LogFile = filepath.Join(cfg.Dir, "etcd.log")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store dir: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	cu := url.URL{Scheme: "http", Host: cfg.ClientAddr}
	pu := url.URL{Scheme: "http", Host: cfg.PeerAddr}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.QuotaBackendBytes = cfg.QuotaBytes
	ec.SnapshotCount = 10000
	ec.MaxTxnOps = 4096
	ec.MaxRequestBytes = 8 << 20
	ec.LogLevel = "warn"
	ec.LogOutputs = []string{cfg.LogFile}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd did not become ready within 60s (see %s)", cfg.LogFile)
	}
	return &Embedded{Etcd: NewEtcd(v3client.New(e.Server)), e: e}, nil
}

// Close stops the client and the member. Closing twice is harmless.
func (m *Embedded) Close() {
	m.closeOnce.Do(func() {
		m.cli.Close()
		m.e.Close()
	})
}

// Err reports a fatal error of the member.
func (m *Embedded) Err() <-chan error { return m.e.Err() }

// DBSize is the backend's size in bytes, and Quota its limit.
func (m *Embedded) DBSize() (size, quota int64) {
	return m.e.Server.Backend().Size(), m.e.Server.Cfg.QuotaBackendBytes
}

// Defragment defragments the in-process member (endpoint "") directly: the
// in-process client's maintenance server has no health notifier and cannot
// do it. Other endpoints go through the client.
func (m *Embedded) Defragment(ctx context.Context, endpoint string) error {
	if endpoint != "" {
		return m.Etcd.Defragment(ctx, endpoint)
	}
	if err := m.e.Server.Defragment(); err != nil {
		return fmt.Errorf("defragment local member: %w", err)
	}
	return nil
}
