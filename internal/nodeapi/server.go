// Package nodeapi is the agent's own HTTPS endpoint, the node API, and the
// managers' side of it. Managers call it with mutual TLS; only a peer with
// a manager certificate of the cluster gets answers. Its first use is
// logs: the managers' LogSource (ClusterLogs) fans a `ruche logs` request
// out to every node that holds a replica of the service. See README.md.
package nodeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
)

// DefaultPort is the node API's port on the node's advertise address.
const DefaultPort = "7444"

// Errors of the node API.
var (
	ErrForbidden   = errors.New("nodeapi: peer is not a manager of the cluster")
	ErrUnreachable = errors.New("nodeapi: node unreachable")
	ErrNoAddress   = errors.New("nodeapi: node has no address")
)

// LogSource streams the logs of a service's replicas on one node: the
// agent (agent.Agent.Logs).
type LogSource interface {
	Logs(ctx context.Context, project, service string, opts agent.LogOptions, w io.Writer) error
}

// Config configures the node API server.
type Config struct {
	// Addr is the listen address, <advertise-addr>:7444 by default (the
	// caller decides; Run needs it).
	Addr string
	// Cert is the node certificate (server certificate) and CA the cluster
	// CA's pool: client certificates must chain to it.
	Cert tls.Certificate
	CA   *x509.CertPool
	// GetCertificate, when set, is used instead of Cert on each handshake
	// (a manager's certificate, renewed in memory).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// Deps are the server's collaborators.
type Deps struct {
	Logs LogSource
	// Drainer is the node's proxy (drain.go); nil: the node runs no
	// ingress, and a drain asks nothing of it.
	Drainer agent.Drainer
	Log     *slog.Logger
}

// Server is the node API server.
type Server struct {
	cfg Config
	d   Deps
	log *slog.Logger
	mux *http.ServeMux
}

// New returns a server. It does no I/O.
func New(cfg Config, d Deps) *Server {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, d: d, log: log.With("component", "nodeapi"), mux: http.NewServeMux()}
	s.mux.Handle("GET /v1/logs", managersOnly(http.HandlerFunc(s.logs)))
	s.mux.Handle("POST /v1/drain", managersOnly(http.HandlerFunc(s.drain)))
	s.mux.Handle("/", managersOnly(http.NotFoundHandler()))
	return s
}

// Handler serves the API; it expects connections made with TLSConfig.
func (s *Server) Handler() http.Handler { return s.mux }

// TLSConfig is the server side of the mutual TLS: the node certificate,
// and a client certificate of the cluster required.
func (s *Server) TLSConfig() *tls.Config {
	tc := &tls.Config{
		Certificates: []tls.Certificate{s.cfg.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.cfg.CA,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if s.cfg.GetCertificate != nil {
		tc.Certificates, tc.GetCertificate = nil, s.cfg.GetCertificate
	}
	return tc
}

// Run listens on Config.Addr and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("node api listener: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (closed on return) until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	s.log.Info("node api listening", "addr", ln.Addr().String())
	err := srv.ServeTLS(ln, "", "")
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("node api: %w", err)
}

// managersOnly answers only peers whose verified certificate is a
// manager's. Agents have no store: they cannot check a manager
// certificate's serial, only that the cluster CA signed it for a manager.
func managersOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := pki.PeerIdentity(r.TLS)
		if err != nil {
			http.Error(w, "a manager certificate of the cluster is required", http.StatusUnauthorized)
			return
		}
		if id.Role != pki.RoleManager {
			http.Error(w, ErrForbidden.Error(), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
