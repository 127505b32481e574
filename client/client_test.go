package client_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/pki"
)

// TestClientRefusesAnAgentAsServer: an agent holds a certificate of the
// cluster CA, with server use, for an address it chose when it joined
// (here the manager's, 127.0.0.1). The client must not take it for the
// manager: the admin token would go to the agent.
func TestClientRefusesAnAgentAsServer(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	apiCert, err := ca.ServerCert(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	agentCert, err := ca.IssueNode(pki.NodeRequest{ID: "evil", Role: pki.RoleAgent, Names: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert      tls.Certificate
		wantToken bool
	}{
		{"manager's API certificate", apiCert, true},
		{"agent's node certificate", agentCert, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got atomic.Value
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Store(r.Header.Get("Authorization"))
				w.Write([]byte("{}"))
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{tc.cert}}
			srv.StartTLS()
			defer srv.Close()
			c, err := client.New(&client.Config{Servers: []string{srv.URL}, CA: string(ca.CertPEM), Token: "ruche_admin"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Status(context.Background())
			sent := got.Load() == "Bearer ruche_admin"
			if sent != tc.wantToken {
				t.Fatalf("token sent: got %v, want %v (err %v)", sent, tc.wantToken, err)
			}
			if !tc.wantToken && (err == nil || !strings.Contains(err.Error(), pki.ErrAgentServer.Error())) {
				t.Fatalf("error: got %v, want one naming %q", err, pki.ErrAgentServer)
			}
		})
	}
}
