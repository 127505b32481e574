package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
	// Changed is closed the next time the certificates may have changed
	// (one obtained, loaded or stored); then it is asked for anew.
	Changed() <-chan struct{}
}

// agentCertsRecheck is how often a certificate stream looks again at the
// certificates besides route changes and Changed: a backstop, since
// Changed also fires once a renewed certificate is in the cache.
const agentCertsRecheck = 30 * time.Second

// agentCertRoutes registers the certificate endpoints of the agent API.
func (s *Server) agentCertRoutes() {
	p := agent.RemotePathPrefix + "{node}"
	s.handleAuth("GET "+p+"/certs", s.agentAuth, s.agentWatchCerts)
	s.handleAuth("GET "+p+"/acme-challenge/{token}", s.agentAuth, s.agentACMEChallenge)
	s.handleAuth("GET "+p+"/acme-tls-alpn/{host}", s.agentAuth, s.agentALPNChallenge)
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
	changed := s.d.AgentCerts.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case hosts = <-hostsc:
			started = true
		case <-changed:
		case <-tick.C:
		}
		changed = s.d.AgentCerts.Changed()
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
		b, err := bundleOf(h, c)
		if err != nil {
			s.log.Warn("certificate key not sent to agents", "host", h, "err", err)
			continue
		}
		out = append(out, b)
	}
	return out
}

func bundleOf(host string, c *tls.Certificate) (agent.CertBundle, error) {
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return agent.CertBundle{}, err
	}
	return agent.CertBundle{Host: host, Chain: c.Certificate, Key: key}, nil
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

// agentALPNChallenge is GET /v1/agent/nodes/{node}/acme-tls-alpn/{host}:
// the certificate (agent.CertBundle) an ACME TLS-ALPN-01 validation of
// host expects, which reached an agent's ingress. It is built from the
// pending challenge in the store, whichever node ordered; its key is a
// throwaway one.
func (s *Server) agentALPNChallenge(w http.ResponseWriter, r *http.Request) error {
	if s.d.AgentCerts == nil {
		return noAgentCerts()
	}
	host := r.PathValue("host")
	c, err := alpnChallengeCert(r.Context(), s.d.AgentCerts, host)
	if err == nil && (c == nil || len(c.Certificate) == 0) {
		err = errors.New("no certificate")
	}
	if err != nil {
		// The reason goes to the agent, which logs it: a validation
		// that fails here is otherwise hard to explain.
		return notFound(fmt.Sprintf("no TLS-ALPN-01 challenge for %s: %v", host, err))
	}
	b, err := bundleOf(host, c)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, b)
	return nil
}

// errHelloTaken ends the in-memory handshake of alpnChallengeCert once
// it has the certificate.
var errHelloTaken = errors.New("apiserver: client hello taken")

// alpnChallengeCert asks certs for the TLS-ALPN-01 certificate of host as
// a validation handshake would: certmagic reads a challenge another node
// started from the store with the handshake's context, which a
// ClientHelloInfo made by hand lacks, so the hello comes from a real
// handshake over an in-memory pipe, stopped once answered.
func alpnChallengeCert(ctx context.Context, certs AgentCerts, host string) (*tls.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cc, sc := net.Pipe()
	var got *tls.Certificate
	gerr := errHelloTaken
	srv := tls.Server(sc, &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		got, gerr = certs.GetCertificate(h)
		return nil, errHelloTaken
	}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Nothing to verify: the handshake stops at the server's side
		// before any certificate is sent.
		cl := tls.Client(cc, &tls.Config{ServerName: host, NextProtos: []string{acmeTLSProto}, InsecureSkipVerify: true})
		cl.HandshakeContext(ctx) // fails: the server side stops after the hello
		cc.Close()
	}()
	srv.HandshakeContext(ctx)
	sc.Close()
	<-done
	return got, gerr
}

// acmeTLSProto is the ALPN protocol of TLS-ALPN-01 validations.
const acmeTLSProto = "acme-tls/1"

// bufferedResponse keeps what a handler writes.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int)        { b.status = code }
