package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSignNodeMutualTLS(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(id, role string) tls.Certificate {
		t.Helper()
		csr, key, err := NewNodeKey(id)
		if err != nil {
			t.Fatal(err)
		}
		cert, serial, err := ca.SignNode(csr, NodeRequest{ID: id, Role: role, Names: []string{"127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		if serial == "" {
			t.Fatal("empty serial")
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	server, agent := issue("mgr", RoleManager), issue("n1", RoleAgent)

	var got Identity
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := PeerIdentity(r.TLS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got = id
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	defer srv.Close()

	get := func(certs []tls.Certificate) int {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: certs}}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get([]tls.Certificate{agent}); code != 200 {
		t.Fatalf("with node cert: got %d, want 200", code)
	}
	if got.NodeID != "n1" || got.Role != RoleAgent {
		t.Errorf("identity: got %+v, want n1/agent", got)
	}
	if code := get(nil); code != http.StatusUnauthorized {
		t.Errorf("without cert: got %d, want 401", code)
	}

	// A certificate from another CA is refused: Go's client does not even
	// offer it (it matches none of the server's acceptable CAs), so the
	// request arrives without one.
	other, err := LoadOrCreateCA(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	csr, key, _ := NewNodeKey("evil")
	cert, _, err := other.SignNode(csr, NodeRequest{ID: "evil", Role: RoleAgent})
	if err != nil {
		t.Fatal(err)
	}
	pair, _ := tls.X509KeyPair(cert, key)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}}}}
	if resp, err := c.Get(srv.URL); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("foreign CA: got %d, want 401 or a handshake error", resp.StatusCode)
		}
	}
}

func TestSignNodeRejects(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	csr, _, _ := NewNodeKey("n1")
	tests := []struct {
		name string
		csr  []byte
		role string
		want error
	}{
		{"bad role", csr, "root", ErrBadRole},
		{"not pem", []byte("hello"), RoleAgent, ErrBadCSR},
		{"tampered", append(csr[:len(csr)-60:len(csr)-60], csr[len(csr)-40:]...), RoleAgent, ErrBadCSR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ca.SignNode(tt.csr, NodeRequest{ID: "n1", Role: tt.role})
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := CertIdentity(&x509.Certificate{}); !errors.Is(err, ErrBadRole) {
		t.Errorf("cert without role: got %v, want ErrBadRole", err)
	}
}

// TestVerifyAPIServer: the API's clients take the manager's API
// certificate and refuse an agent's node certificate, valid for the same
// address and signed by the same CA.
func TestVerifyAPIServer(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	api, err := ca.ServerCert(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	node := func(role string) tls.Certificate {
		pair, err := ca.IssueNode(NodeRequest{ID: "n1", Role: role, Names: []string{"127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		want error
	}{
		{"api certificate", api, nil},
		{"manager node certificate", node(RoleManager), nil},
		{"agent node certificate", node(RoleAgent), ErrAgentServer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{tc.cert}}
			srv.StartTLS()
			defer srv.Close()
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), VerifyConnection: VerifyAPIServer}}}
			resp, err := hc.Get(srv.URL)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
