package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/routing"
)

// AgentCerts is what agents' ingress needs of the managers' certificates:
// the certificate manager (certs.Manager) of this manager's ingress.
// Agents have no store, and certificate keys are sealed with the managers'
// box there: they get the certificates of the routes over the agent API's
// mutual TLS instead, and ACME HTTP-01 answers through it.
type AgentCerts interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool
}

// agentCertsRecheck is how often a certificate stream looks again at the
// certificates (renewals, orders that completed) besides route changes.
const agentCertsRecheck = 30 * time.Second

// agentCertRoutes registers the certificate endpoints of the agent API.
func (s *Server) agentCertRoutes() {
	p := agent.RemotePathPrefix + "{node}"
	s.handleAuth("GET "+p+"/certs", s.agentAuth, s.agentWatchCerts)
	s.handleAuth("GET "+p+"/acme-challenge/{token}", s.agentAuth, s.agentACMEChallenge)
}

func noAgentCerts() error {
	return &apiError{status: http.StatusNotImplemented, code: "not_implemented",
		msg: "this manager runs no ingress: it has no certificates for the agents"}
}

// agentWatchCerts is GET /v1/agent/nodes/{node}/certs: the certificates of
// the TLS routes as agent.StreamFrame[agent.CertBundle] NDJSON, the full
// set on connect and whenever it changes (routes, new or renewed
// certificates); a certificate not obtained yet is left out until it is.
func (s *Server) agentWatchCerts(w http.ResponseWriter, r *http.Request) error {
	if s.d.AgentCerts == nil {
		return noAgentCerts()
	}
	ctx, cancel := context.WithCancel(r.Context())
	hostsc := make(chan []string, 1)
	wt := routing.New(routing.Config{LocalNode: r.PathValue("node"), DefaultTLS: s.cfg.DefaultTLS}, routing.Deps{
		Store: s.d.Store, Log: s.log,
		OnChange: func(t *routing.Table) {
			select {
			case <-hostsc:
			default:
			}
			hostsc <- tlsHosts(t)
		},
	})
	sets := make(chan []agent.CertBundle, 1)
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		wt.Run(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		s.feedCerts(ctx, hostsc, sets)
	}()
	defer func() {
		cancel()
		<-done
		<-done
	}()
	return streamSets(s, w, r, sets)
}

// feedCerts sends the bundles of the hosts whenever they change.
func (s *Server) feedCerts(ctx context.Context, hostsc <-chan []string, sets chan []agent.CertBundle) {
	tick := time.NewTicker(agentCertsRecheck)
	defer tick.Stop()
	var hosts []string
	var last []byte
	started := false
	for {
		select {
		case <-ctx.Done():
			return
		case hosts = <-hostsc:
			started = true
		case <-tick.C:
		}
		if !started {
			continue // no table yet
		}
		set := s.bundles(hosts)
		b, _ := json.Marshal(set)
		if last != nil && bytes.Equal(b, last) {
			continue
		}
		last = b
		select {
		case <-sets:
		default:
		}
		sets <- set
	}
}

// bundles are the certificates of hosts the manager has now.
func (s *Server) bundles(hosts []string) []agent.CertBundle {
	out := []agent.CertBundle{}
	for _, h := range hosts {
		c, err := s.d.AgentCerts.GetCertificate(&tls.ClientHelloInfo{ServerName: h})
		if err != nil || c == nil || len(c.Certificate) == 0 {
			continue
		}
		key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		if err != nil {
			s.log.Warn("certificate key not sent to agents", "host", h, "err", err)
			continue
		}
		out = append(out, agent.CertBundle{Host: h, Chain: c.Certificate, Key: key})
	}
	return out
}

// tlsHosts are the hosts of the table's TLS routes, sorted, once each.
func tlsHosts(t *routing.Table) []string {
	var out []string
	for _, r := range t.Routes {
		if r.TLS != client.TLSNone && !slices.Contains(out, strings.ToLower(r.Host)) {
			out = append(out, strings.ToLower(r.Host))
		}
	}
	slices.Sort(out)
	return out
}

// agentACMEChallenge is GET /v1/agent/nodes/{node}/acme-challenge/{token}?host=H:
// the answer an ACME server expects at
// http://H/.well-known/acme-challenge/<token>, which reached an agent's
// ingress. Challenges live in the store: whichever node ordered, any
// manager answers.
func (s *Server) agentACMEChallenge(w http.ResponseWriter, r *http.Request) error {
	if s.d.AgentCerts == nil {
		return noAgentCerts()
	}
	host := r.URL.Query().Get("host")
	if host == "" {
		return invalid("host is required")
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://"+host+"/.well-known/acme-challenge/"+r.PathValue("token"), nil)
	if err != nil {
		return invalid("bad host or token")
	}
	rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
	if !s.d.AgentCerts.HandleHTTPChallenge(rec, req) || rec.status != http.StatusOK {
		return notFound("no such ACME challenge")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(rec.body.Bytes())
	return nil
}

// bufferedResponse keeps what a handler writes.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int)        { b.status = code }
