package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// fakeCerts is a certificate manager with fixed certificates and
// challenges.
type fakeCerts struct {
	mu         sync.Mutex
	certs      map[string]*tls.Certificate
	challenges map[string]string // host + path -> answer
	alpn       map[string]*tls.Certificate
	changed    chan struct{}
	asked      map[string]int // GetCertificate calls by server name
}

func (f *fakeCerts) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

// obtained adds host's certificate, as an ACME order that completed.
func (f *fakeCerts) obtained(host string, c *tls.Certificate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.certs[host] = c
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

func (f *fakeCerts) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.asked == nil {
		f.asked = map[string]int{}
	}
	f.asked[h.ServerName]++
	if len(h.SupportedProtos) == 1 && h.SupportedProtos[0] == acmeTLSProto {
		if h.Context() == nil {
			return nil, errors.New("a TLS-ALPN-01 hello without context") // certmagic reads the store with it
		}
		if c, ok := f.alpn[h.ServerName]; ok {
			return c, nil
		}
		return nil, errors.New("no challenge")
	}
	if c, ok := f.certs[h.ServerName]; ok {
		return c, nil
	}
	return nil, errors.New("not ready")
}

func (f *fakeCerts) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
		return false
	}
	a, ok := f.challenges[r.Host+r.URL.Path]
	if !ok {
		http.Error(w, "no", http.StatusNotFound)
		return true
	}
	io.WriteString(w, a)
	return true
}

func leafFor(t *testing.T, ca *pki.CA, host string) *tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Leaf([]string{host}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestAgentCerts: a joined node follows the certificates of the TLS
// routes (only those the manager has), gets a new set when routes change,
// and fetches ACME HTTP-01 answers and TLS-ALPN-01 certificates through
// the managers.
func TestAgentCerts(t *testing.T) {
	fc := &fakeCerts{}
	e := newTLSEnvWith(t, func(d *Deps) { d.AgentCerts = fc })
	st, ca, srv := e.st, e.ca, e.srv
	fc.mu.Lock()
	fc.certs = map[string]*tls.Certificate{"a.test": leafFor(t, ca, "a.test"), "c.test": leafFor(t, ca, "c.test")}
	fc.challenges = map[string]string{"a.test/.well-known/acme-challenge/tok1": "tok1.thumb"}
	fc.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // before the env's cleanup: closing the server waits for the streams
	cert := e.mustJoin("n2")

	putService := func(routes ...client.RouteSpec) {
		t.Helper()
		rec := store.ServiceRecord{Spec: client.ServiceSpec{Name: "web", Image: "x", Replicas: 1, Routes: routes}, Version: 1}
		if _, err := st.Txn(ctx, nil, store.Put(store.ServiceKey("shop", "web"), store.Encode(rec))); err != nil {
			t.Fatal(err)
		}
	}
	putService(client.RouteSpec{Host: "a.test", Port: 80, TLS: client.TLSInternal}, client.RouteSpec{Host: "b.test", Port: 80},
		client.RouteSpec{Host: "d.test", Port: 80, TLS: client.TLSInternal}) // d.test: not obtained yet

	rc := agent.NewRemoteConn(agent.RemoteConfig{Managers: []string{srv.URL}, Cert: *cert, RootCAs: ca.Pool()})
	defer rc.Close()
	sets := rc.WatchCerts(ctx, "n2")
	next := func(want ...string) []agent.CertBundle {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case set := <-sets:
				var hosts []string
				for _, b := range set {
					hosts = append(hosts, b.Host)
				}
				if strings.Join(hosts, ",") == strings.Join(want, ",") {
					return set
				}
			case <-timeout:
				t.Fatalf("no certificate set %v within 10s", want)
			}
		}
	}
	set := next("a.test")
	key, err := x509.ParsePKCS8PrivateKey(set[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Certificate{Certificate: set[0].Chain, PrivateKey: key}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || leaf.VerifyHostname("a.test") != nil {
		t.Fatalf("bundle leaf: %v %v", leaf, err)
	}
	if _, err := tls.X509KeyPair(pemOf("CERTIFICATE", set[0].Chain[0]), pemOf("PRIVATE KEY", set[0].Key)); err != nil {
		t.Errorf("key does not fit the certificate: %v", err)
	}

	putService(client.RouteSpec{Host: "a.test", Port: 80, TLS: client.TLSInternal}, client.RouteSpec{Host: "c.test", Port: 80, TLS: client.TLSInternal})
	next("a.test", "c.test")

	// A certificate obtained after the routes: sent at once, well before
	// the stream's periodic recheck.
	putService(client.RouteSpec{Host: "a.test", Port: 80, TLS: client.TLSInternal}, client.RouteSpec{Host: "c.test", Port: 80, TLS: client.TLSInternal},
		client.RouteSpec{Host: "e.test", Port: 80, TLS: client.TLSACME})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		fc.mu.Lock()
		asked := fc.asked["e.test"]
		fc.mu.Unlock()
		if asked > 0 {
			break // the stream has the route, not the certificate yet
		}
		if time.Now().After(deadline) {
			t.Fatal("the certificate stream never looked for e.test")
		}
	}
	fc.obtained("e.test", leafFor(t, ca, "e.test"))
	next("a.test", "c.test", "e.test")

	got, err := rc.ACMEChallenge(ctx, "n2", "a.test", "/.well-known/acme-challenge/tok1")
	if err != nil || string(got) != "tok1.thumb" {
		t.Errorf("challenge: got %q %v, want tok1.thumb", got, err)
	}
	if _, err := rc.ACMEChallenge(ctx, "n2", "a.test", "/.well-known/acme-challenge/nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown challenge: got %v, want not found", err)
	}
	fc.mu.Lock()
	fc.alpn = map[string]*tls.Certificate{"a.test": leafFor(t, ca, "a.test")}
	fc.mu.Unlock()
	b, err := rc.ACMEALPNCert(ctx, "n2", "a.test")
	if err != nil || b.Host != "a.test" || len(b.Chain) != 1 || string(b.Chain[0]) != string(fc.alpn["a.test"].Certificate[0]) {
		t.Errorf("TLS-ALPN-01 certificate: got %s with %d certificates, %v; want a.test's", b.Host, len(b.Chain), err)
	} else if _, err := tls.X509KeyPair(pemOf("CERTIFICATE", b.Chain[0]), pemOf("PRIVATE KEY", b.Key)); err != nil {
		t.Errorf("TLS-ALPN-01 key does not fit its certificate: %v", err)
	}
	if _, err := rc.ACMEALPNCert(ctx, "n2", "c.test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no TLS-ALPN-01 challenge: got %v, want not found", err)
	}
	code, _ := e.do(e.httpClient(nil), "GET", agent.RemotePathPrefix+"n2/certs", "", nil)
	if code != http.StatusUnauthorized {
		t.Errorf("certificates without a node certificate: got %d, want 401", code)
	}
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
