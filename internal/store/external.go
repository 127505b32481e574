package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ruche-platform/ruche/client"
)

// Server is the store a manager runs on: the embedded member (*Embedded)
// or an external etcd cluster (*External).
type Server interface {
	Store
	RunElected(ctx context.Context, name, id string, fn func(ctx context.Context)) error
	Usage(ctx context.Context) (Usage, error)
	Defragment(ctx context.Context, endpoint string) error
	Compact(ctx context.Context, rev int64) error
	DisarmNoSpace(ctx context.Context) error
	Snapshot(ctx context.Context, w io.Writer) (SnapshotInfo, error)
	StoreStatus(ctx context.Context) client.StoreStatus
	Endpoint() string
	Client() *clientv3.Client
	// Err reports a fatal error of the store (the embedded member
	// stopped); it never fires for an external cluster.
	Err() <-chan error
	Close()
}

var (
	_ Server = (*Embedded)(nil)
	_ Server = (*External)(nil)
)

// ExternalConfig is how to reach an external etcd cluster
// (`--store-endpoints`).
type ExternalConfig struct {
	Endpoints []string // http:// or https:// URLs of the members' client listeners
	// CAFile verifies the members' certificates (default: the system
	// roots); CertFile and KeyFile are the client certificate when the
	// cluster asks for one.
	CAFile, CertFile, KeyFile string
	DialTimeout               time.Duration // default 5s
}

// External is a Store on an etcd cluster ruche does not run.
type External struct {
	*Etcd
}

// ConnectExternal connects to an external etcd cluster and checks that a
// member answers.
func ConnectExternal(ctx context.Context, cfg ExternalConfig) (*External, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("external store: no endpoints")
	}
	tlsOn := false
	for _, ep := range cfg.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("store endpoint %q: want http://host:port or https://host:port", ep)
		}
		tlsOn = tlsOn || u.Scheme == "https"
	}
	if !tlsOn && (cfg.CAFile != "" || cfg.CertFile != "") {
		return nil, fmt.Errorf("store TLS files given but the endpoints are not https://")
	}
	var tc *tls.Config
	if tlsOn {
		var err error
		if tc, err = externalTLS(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         tc,
		Logger:      zap.NewNop(),
		// Keep the connection through idle periods and notice a dead
		// member quickly.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("external store: %w", err)
	}
	x := &External{Etcd: NewEtcd(cli)}
	cctx, cancel := context.WithTimeout(ctx, 2*cfg.DialTimeout)
	defer cancel()
	if _, err := x.Usage(cctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("cannot reach the external etcd at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	return x, nil
}

func externalTLS(cfg ExternalConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--store-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--store-ca %s: no PEM certificate in it", cfg.CAFile)
		}
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, fmt.Errorf("--store-cert and --store-key go together")
	}
	if cfg.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--store-cert/--store-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Err never fires: an external cluster's failures show as request errors.
func (x *External) Err() <-chan error { return nil }

// Close closes the client; the cluster keeps running.
func (x *External) Close() { x.cli.Close() }
