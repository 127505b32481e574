package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EmbeddedConfig configures the embedded single-member etcd of `ruche up`.
type EmbeddedConfig struct {
	Dir        string // etcd's data directory
	Name       string // member name
	ClientAddr string // loopback host:port for etcd clients (default 127.0.0.1:7479)
	PeerAddr   string // loopback host:port for peers (default 127.0.0.1:7480)
	QuotaBytes int64  // backend quota (default 2 GiB)
	LogFile    string // where etcd's own log goes (default <Dir>/etcd.log)

	// PeerTLS, when set, makes the member listen for peers on
	// https://PeerAddr with mutual TLS (a manager with an advertise
	// address: other managers join it). Nil: plain http on loopback, the
	// single member of `ruche up`.
	PeerTLS *PeerTLS
	// InitialCluster ("name=https://ip:7480,...") and Existing are set by
	// a manager that joins: the leader added it with MemberAdd and
	// answered the cluster's members. Empty: a new single-member cluster
	// (ignored by etcd when Dir already holds a member).
	InitialCluster string
	Existing       bool
	// HeartbeatMs and ElectionMs are etcd's raft timing (defaults 100 and
	// 1000: fine on a LAN).
	HeartbeatMs, ElectionMs uint
	// Log receives what the member does on its own (leaderwatch.go); nil
	// discards it.
	Log *slog.Logger
}

// PeerTLS is the member's certificate for peer traffic (server and client
// at once) and the CA that peers' certificates must chain to. Only peers
// whose certificate's CommonName is one of AllowedCNs are accepted.
type PeerTLS struct {
	CertFile, KeyFile, CAFile string
	AllowedCNs                []string
}

// Embedded is a running embedded etcd member and a Store on it.
type Embedded struct {
	*Etcd
	e         *embed.Etcd
	logFile   *os.File // etcd's log, closed with the member
	errc      chan error
	closeOnce sync.Once
	stopWatch context.CancelFunc
	watchDone chan struct{}
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
	if t := cfg.PeerTLS; t != nil {
		pu.Scheme = "https"
		ec.PeerTLSInfo = transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile,
			ClientCertFile: t.CertFile, ClientKeyFile: t.KeyFile, ClientCertAuth: true, AllowedCNs: t.AllowedCNs}
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	if cfg.InitialCluster != "" {
		ec.InitialCluster = cfg.InitialCluster
	}
	if cfg.Existing {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	if cfg.HeartbeatMs > 0 {
		ec.TickMs = cfg.HeartbeatMs
	}
	if cfg.ElectionMs > 0 {
		ec.ElectionMs = cfg.ElectionMs
	}
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	ec.QuotaBackendBytes = cfg.QuotaBytes
	ec.SnapshotCount = 10000
	ec.MaxTxnOps = 4096
	ec.MaxRequestBytes = 8 << 20
	// etcd's log goes to a file this member opens and closes: with
	// LogOutputs, etcd's logger opens it and nothing closes it, so every
	// member started and stopped in a process kept a descriptor.
	logFile, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("etcd log: %w", err)
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(zapcore.NewCore(
		zapcore.NewJSONEncoder(logutil.DefaultZapLoggerConfig.EncoderConfig), zapcore.AddSync(logFile), zap.WarnLevel),
		zap.AddCaller())) // etcd's own format, as it wrote the file before
	e, err := embed.StartEtcd(ec)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	fail := func(err error) (*Embedded, error) {
		e.Close()
		logFile.Close()
		return nil, err
	}
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fail(fmt.Errorf("etcd: %w", err))
	case <-timeout.C:
		e.Server.Stop()
		return fail(fmt.Errorf("etcd did not become ready within 60s (see %s)", cfg.LogFile))
	}
	// Ready, but the cluster version is decided a moment later (by the
	// leader, after its first commit): a member joining before that
	// reads "not_decided" from this one and refuses to start
	// ("incompatible with current running cluster"). Return once it is.
	for e.Server.ClusterVersion() == nil {
		select {
		case err := <-e.Err():
			return fail(fmt.Errorf("etcd: %w", err))
		case <-timeout.C:
			e.Server.Stop()
			return fail(fmt.Errorf("etcd's cluster version was not decided within 60s (see %s)", cfg.LogFile))
		case <-time.After(5 * time.Millisecond):
		}
	}
	m := &Embedded{Etcd: NewEtcd(v3client.New(e.Server)), e: e, logFile: logFile, errc: make(chan error, 1)}
	m.electionTTL = electionTTLFor(cfg.ElectionMs)
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wctx, stop := context.WithCancel(context.Background())
	m.stopWatch, m.watchDone = stop, make(chan struct{})
	go func() {
		defer close(m.watchDone)
		m.watchLeader(wctx, log.With("component", "store"))
	}()
	go func() {
		// A member removed from the cluster stops its server without an
		// error on e.Err(): report that too, so its manager stops.
		select {
		case err := <-e.Err():
			m.errc <- err
		case <-e.Server.StopNotify():
			m.errc <- errors.New("the store member stopped (removed from the cluster?)")
		}
	}()
	return m, nil
}

// MemberID is this member's etcd ID.
func (m *Embedded) MemberID() uint64 { return uint64(m.e.Server.MemberID()) }

// PeerURL is the peer URL this member advertises.
func (m *Embedded) PeerURL() string { return m.e.Config().AdvertisePeerUrls[0].String() }

// Close stops the client and the member. Closing twice is harmless.
func (m *Embedded) Close() {
	m.closeOnce.Do(func() {
		m.stopWatch()
		<-m.watchDone
		m.cli.Close()
		m.e.Close()
		m.logFile.Close()
	})
}

// Err reports a fatal error of the member.
func (m *Embedded) Err() <-chan error { return m.errc }

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
