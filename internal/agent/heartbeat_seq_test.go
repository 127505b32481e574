package agent

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// TestHeartbeatBackToBack: a heartbeat that has returned leaves no beat in
// flight behind it, so the next one, sent at once, goes out. The flag
// used to be cleared after the answer was handed over, and a beat sent
// right after could find it still set ("every manager still has a beat in
// flight"; TestRemoteConnRemoved failed so once in CI).
func TestHeartbeatBackToBack(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"interval":"1s"}`))
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := NewRemoteConn(RemoteConfig{Managers: []string{srv.URL}, RootCAs: pool})
	defer c.Close()
	for i := range 2000 {
		if _, err := c.Heartbeat(context.Background(), "n2", client.NodeLoad{}); err != nil {
			t.Fatalf("heartbeat %d: %v", i+1, err)
		}
	}
}
