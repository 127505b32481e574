package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/routing"
	"github.com/ruche-platform/ruche/internal/store"
)

type chanRoutes struct {
	node       string
	ch         chan []routing.Route
	certs      chan []agent.CertBundle
	challenges map[string]string // host + path -> answer
	alpn       map[string]agent.CertBundle
}

func (c *chanRoutes) ACMEALPNCert(ctx context.Context, node, host string) (agent.CertBundle, error) {
	if b, ok := c.alpn[host]; ok && node == "n3" {
		return b, nil
	}
	return agent.CertBundle{}, store.ErrNotFound
}

func (c *chanRoutes) WatchCerts(ctx context.Context, node string) <-chan []agent.CertBundle {
	out := make(chan []agent.CertBundle)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case set := <-c.certs:
				select {
				case out <- set:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (c *chanRoutes) ACMEChallenge(ctx context.Context, node, host, path string) ([]byte, error) {
	if a, ok := c.challenges[host+path]; ok && node == "n3" {
		return []byte(a), nil
	}
	return nil, store.ErrNotFound
}

func (c *chanRoutes) WatchRoutes(ctx context.Context, node string) <-chan []routing.Route {
	c.node = node
	out := make(chan []routing.Route)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case rs := <-c.ch:
				select {
				case out <- rs:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// TestAgentIngress: the proxy of an agent node serves the tables the
// managers send, ready backends with an address only.
func TestAgentIngress(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from n2")
	}))
	defer backend.Close()
	src := &chanRoutes{ch: make(chan []routing.Route), certs: make(chan []agent.CertBundle)}
	in, err := newAgentIngress(IngressConfig{HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HoldTimeout: 100 * time.Millisecond},
		"n3", src, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 3)
	in.run(ctx, func(name string, fn func() error) { go func() { errc <- fn() }() })
	defer func() {
		cancel()
		for range 3 {
			if err := <-errc; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}()
	select {
	case <-in.proxy.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not ready")
	}
	httpAddr, httpsAddr := in.proxy.Addrs()
	if httpsAddr == nil {
		t.Fatal("no HTTPS listener")
	}
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	// Every request goes to the proxy on loopback, whatever the host; no
	// redirect is followed.
	hc := func(addr net.Addr) *http.Client {
		return &http.Client{
			Timeout: 5 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "tcp", addr.String())
				},
				TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	plain, secure := hc(httpAddr), hc(httpsAddr)
	do := func(c *http.Client, url string) (int, string, error) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	get := func() (int, string) {
		code, body, err := do(plain, "http://shop.test/")
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	if code, _ := get(); code != http.StatusNotFound {
		t.Errorf("before any table: got %d, want 404", code)
	}
	addr := strings.TrimPrefix(backend.URL, "http://")
	src.ch <- []routing.Route{{Project: "shop", Service: "web", Host: "shop.test", TLS: client.TLSNone, Backends: []routing.Backend{
		{TaskID: "shop.web.1.a", Node: "n2", Addr: addr, Ready: true},
		{TaskID: "shop.web.2.b", Node: "n1", Addr: "", Ready: true}, // unreachable from here: left out
	}}}
	if src.node != "n3" {
		t.Errorf("table asked for node %q, want n3", src.node)
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	eventually("the replica through the agent's proxy", func() bool {
		code, body := get()
		return code == http.StatusOK && body == "hello from n2"
	})

	// A TLS route, with the certificate the managers send.
	src.challenges = map[string]string{"secure.test/.well-known/acme-challenge/tok1": "tok1.thumb"}
	src.ch <- []routing.Route{
		{Project: "shop", Service: "web", Host: "shop.test", TLS: client.TLSNone, Backends: []routing.Backend{{TaskID: "shop.web.1.a", Addr: addr, Ready: false}}},
		{Project: "shop", Service: "sec", Host: "secure.test", TLS: client.TLSInternal, Backends: []routing.Backend{{TaskID: "shop.sec.1.a", Addr: addr, Ready: true}}},
	}
	src.certs <- []agent.CertBundle{leafBundle(t, ca, "secure.test")}
	eventually("HTTPS with the managers' certificate", func() bool {
		code, body, err := do(secure, "https://secure.test/")
		return err == nil && code == http.StatusOK && body == "hello from n2"
	})
	if code, _, err := do(plain, "http://secure.test/x"); err != nil || code != http.StatusPermanentRedirect {
		t.Errorf("plain HTTP to a TLS route: got %d %v, want 308", code, err)
	}
	if code, body, err := do(plain, "http://secure.test/.well-known/acme-challenge/tok1"); err != nil || code != http.StatusOK || body != "tok1.thumb" {
		t.Errorf("ACME HTTP-01 through the managers: got %d %q %v", code, body, err)
	}
	if code, _, err := do(plain, "http://secure.test/.well-known/acme-challenge/nope"); err != nil || code != http.StatusNotFound {
		t.Errorf("unknown challenge: got %d %v, want 404", code, err)
	}
	// TLS-ALPN-01: the validation handshake gets the certificate the
	// managers build for the pending challenge, and the acme-tls/1
	// protocol.
	src.alpn = map[string]agent.CertBundle{"secure.test": leafBundle(t, ca, "secure.test")}
	alpn := func(host string) (*tls.ConnectionState, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", httpsAddr.String(),
			&tls.Config{ServerName: host, NextProtos: []string{acmeTLSProto}, InsecureSkipVerify: true})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.ConnectionState()
		return &st, nil
	}
	st, err := alpn("secure.test")
	if err != nil || st.NegotiatedProtocol != acmeTLSProto || !bytes.Equal(st.PeerCertificates[0].Raw, src.alpn["secure.test"].Chain[0]) {
		t.Errorf("TLS-ALPN-01 through the managers: got %v, %v; want the managers' challenge certificate over %s", st, err, acmeTLSProto)
	}
	if _, err := alpn("other.test"); err == nil {
		t.Errorf("TLS-ALPN-01 without a pending challenge: want a handshake error")
	}
	if _, _, err := do(secure, "https://other.test/"); err == nil {
		t.Errorf("HTTPS for a host without a certificate: want a handshake error")
	}
	eventually("a replica no longer ready gets no traffic", func() bool {
		code, _ := get()
		return code == http.StatusServiceUnavailable
	})
}

// leafBundle is a certificate of ca for host, as the managers send it.
func leafBundle(t *testing.T, ca *pki.CA, host string) agent.CertBundle {
	t.Helper()
	certPEM, keyPEM, err := ca.Leaf([]string{host}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return agent.CertBundle{Host: host, Chain: pair.Certificate, Key: key}
}
