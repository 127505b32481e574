// Package apiserver is ruche's HTTP API: desired state goes in here and only
// here. Handlers validate a request in full before writing anything, write it
// in one store transaction, and map package errors to HTTP statuses (the only
// place that does).
package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// DefaultMaxBody is the largest request body accepted (a compose file with
// its secrets and configs).
const DefaultMaxBody = 8 << 20

// Config tunes the server.
type Config struct {
	MaxBodyBytes int64
	Version      string
	ClusterID    string
	// ManagerName and APIAddr describe this manager in `ruche status`.
	ManagerName, APIAddr string
	// DefaultTLS is what a route's automatic TLS mode means here.
	DefaultTLS string
	// ManagerURLs are the API URLs machines join through and agents talk
	// to (join answers, `token create`). Empty: https://APIAddr.
	ManagerURLs []string
	// AgentKeepalive is the interval of keep-alive lines on agent streams
	// (default 10s).
	AgentKeepalive time.Duration
	// StreamWriteTimeout bounds each write of an NDJSON stream (events,
	// project watches, agent streams): a client that accepts nothing for
	// that long is dropped (default 1m).
	StreamWriteTimeout time.Duration
}

// Sealer encrypts secret contents before they are stored.
type Sealer interface {
	Seal(plain []byte) ([]byte, error)
}

// Checker checks what only a node can: that an image exists (locally or by
// pulling it) and that a host port is free. In `ruche up` it is the local
// node; nil skips those checks.
type Checker interface {
	CheckImage(ctx context.Context, ref string) error
	CheckPort(ctx context.Context, protocol, hostIP string, port uint16) error
}

// LogOptions select what `ruche logs` shows.
type LogOptions struct {
	Follow bool
	Since  time.Time
	Tail   int
}

// LogSource streams the logs of a service's replicas to w, each line
// prefixed with its replica ("web.2 | ").
type LogSource interface {
	Logs(ctx context.Context, project, service string, opts LogOptions, w io.Writer) error
}

// StoreStatus reports the store's health and size for `ruche status`.
type StoreStatus func(ctx context.Context) client.StoreStatus

// Deps are the server's collaborators.
type Deps struct {
	Store       store.Store
	Secrets     Sealer
	Checker     Checker     // may be nil
	Logs        LogSource   // may be nil: logs answer 501
	StoreStatus StoreStatus // may be nil
	Events      *events.Recorder
	Log         *slog.Logger
	Registry    *prometheus.Registry // /metrics serves it; may be nil
	// Backup writes backup archives; nil: GET /v1/backup answers 501.
	Backup BackupWriter
	// CA signs node certificates at join; nil: joins answer 501.
	CA *pki.CA
	// Opener opens secrets for remote agents; nil: they cannot have any.
	Opener agent.Opener
	// Heartbeats takes remote agents' heartbeats (the node health
	// tracker); nil drops them.
	Heartbeats agent.HeartbeatSink
	// AgentCerts hands agents the routes' certificates (agentcerts.go);
	// nil: agent nodes serve no HTTPS.
	AgentCerts AgentCerts
	// Managers adds joining managers (managers.go); nil: manager tokens
	// are refused.
	Managers Managers
	// Drain drains a stopping replica from the proxies of every node but
	// the asking one (nodeapi.ClusterDrain); nil: an agent's drain request
	// answers at once.
	Drain ClusterDrainer
}

// ClusterDrainer drains a replica from every node's proxy but from's.
type ClusterDrainer interface {
	Drain(ctx context.Context, task, from string) error
}

// Server is the API.
type Server struct {
	cfg Config
	d   Deps
	log *slog.Logger
	m   *metrics
	mux *http.ServeMux

	local *agent.LocalConn // the agent API's store side
	nodes *nodeCache

	hbMu   sync.Mutex // the managers heartbeats answer (managers.go)
	hbAt   time.Time
	hbURLs []string
}

// New wires the routes. It does no I/O.
func New(cfg Config, d Deps) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBody
	}
	s := &Server{cfg: cfg, d: d, log: d.Log.With("component", "apiserver"), mux: http.NewServeMux()}
	var reg prometheus.Registerer // a nil *Registry in an interface is not nil
	if d.Registry != nil {
		reg = d.Registry
	}
	s.m = newMetrics(reg)
	if s.cfg.AgentKeepalive <= 0 {
		s.cfg.AgentKeepalive = 10 * time.Second
	}
	if s.cfg.StreamWriteTimeout <= 0 {
		s.cfg.StreamWriteTimeout = time.Minute
	}
	s.local = agent.NewLocalConn(d.Store, d.Opener)
	s.local.Beats = d.Heartbeats
	s.nodes = newNodeCache(d.Store)
	s.routes()
	return s
}

func (s *Server) routes() {
	s.handle("GET /v1/status", s.getStatus)
	s.nodeRoutes() // nodes.go
	s.handle("GET /v1/projects", s.listProjects)
	s.handle("GET /v1/projects/{project}", s.getProject)
	s.handle("PUT /v1/projects/{project}", s.deploy)
	s.handle("DELETE /v1/projects/{project}", s.removeProject)
	s.handle("GET /v1/projects/{project}/watch", s.watchProject)
	s.handle("POST /v1/projects/{project}/services/{service}/scale", s.scale)
	s.handle("POST /v1/projects/{project}/services/{service}/rollback", s.rollback)
	s.handle("GET /v1/projects/{project}/services/{service}/logs", s.logs)
	s.handle("GET /v1/events", s.events)
	s.handle("GET /v1/routes", s.listRoutes)
	s.handle("GET /v1/backup", s.getBackup)
	s.handle("GET /v1/metrics/targets", s.metricsTargets)  // metricstargets.go
	s.handle("GET /v1/debug/profile/{name}", s.getProfile) // profile.go
	s.tokenRoutes()
	s.joinRoutes()
	s.managerRoutes() // managers.go
	s.agentRoutes()
	s.agentRouteTable()
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	if s.d.Registry != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.d.Registry, promhttp.HandlerOpts{}))
	}
	s.mux.HandleFunc("/", s.noRoute)
}

// noRoute answers what no route serves: 405 with the methods that path
// takes (Allow), or 404. The mux's own 405 is never sent, as this route
// matches every method.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); m != r.Method && pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeError(w, &apiError{status: http.StatusNotFound, code: "not_found", msg: fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)})
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		msg: fmt.Sprintf("%s %s: method not allowed, use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))})
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Run keeps the server's view of the node records (who may use the agent
// API) until ctx ends. Without it the agent API reads the store on every
// request.
func (s *Server) Run(ctx context.Context) error { return s.nodes.run(ctx) }

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers an authenticated route with metrics, panic recovery and
// error mapping.
func (s *Server) handle(pattern string, h handlerFunc) { s.handleAuth(pattern, s.authenticate, h) }

// handleAuth is handle with another authentication (nil: none).
func (s *Server) handleAuth(pattern string, auth func(*http.Request) error, h handlerFunc) {
	route := pattern[strings.IndexByte(pattern, ' ')+1:]
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panic", "route", route, "panic", p, "stack", string(debug.Stack()))
				if !rec.wrote {
					writeError(rec, errors.New("internal error"))
				}
			}
			end := time.Now()
			if !rec.flushed.IsZero() {
				end = rec.flushed // a stream: the time until it started, not how long it stayed open
			}
			s.m.observe(r.Method, route, rec.status, end.Sub(start))
		}()
		if auth != nil {
			if err := auth(r); err != nil {
				writeError(rec, err)
				return
			}
		}
		r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBodyBytes)
		if err := h(rec, r); err != nil {
			if isInternal(err) {
				s.log.Error("request failed", "route", route, "err", err)
			}
			if !rec.wrote {
				writeError(rec, err)
			}
		}
	})
}

// authenticate checks the bearer token against the store: only admin API
// tokens (/ruche/tokens/) authenticate; join tokens live elsewhere and
// authenticate nothing but a join.
func (s *Server) authenticate(r *http.Request) error {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "missing bearer token (Authorization: Bearer <token>)"}
	}
	var rec store.TokenRecord
	if _, err := store.GetJSON(r.Context(), s.d.Store, store.TokenKey(HashToken(tok)), &rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "invalid token"}
		}
		return err
	}
	if !rec.Expires.IsZero() && time.Now().After(rec.Expires) {
		return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "token expired"}
	}
	if rec.Role != "admin" {
		return &apiError{status: http.StatusForbidden, code: "forbidden", msg: "this token's role cannot use the API"}
	}
	return nil
}

// HashToken is how tokens are stored: never in clear.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

type statusRecorder struct {
	http.ResponseWriter
	status  int
	wrote   bool
	flushed time.Time // first Flush: a streaming answer (watches, follows, drains) has started
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if r.flushed.IsZero() {
		r.flushed = time.Now()
	}
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (write
// deadlines of streams).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
