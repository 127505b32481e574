package nodeapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
)

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// nodeCert issues a node certificate of role for id.
func nodeCert(t *testing.T, ca *pki.CA, id, role string) tls.Certificate {
	t.Helper()
	csr, key, err := pki.NewNodeKey(id)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.SignNode(csr, pki.NodeRequest{ID: id, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, key)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// fakeLogs is a node's agent: it writes its lines, then with Follow waits
// for more (sent on more) until ctx ends, or fails with err.
type fakeLogs struct {
	lines []string
	err   error
	more  chan string

	mu    sync.Mutex
	calls []agent.LogOptions
}

func (f *fakeLogs) Logs(ctx context.Context, project, service string, opts agent.LogOptions, w io.Writer) error {
	f.mu.Lock()
	f.calls = append(f.calls, opts)
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if project != "shop" || service != "web" {
		return fmt.Errorf("unexpected service %s/%s", project, service)
	}
	for _, l := range f.lines {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-f.more:
			if !ok {
				return errors.New("agent stopped")
			}
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return err
			}
		}
	}
}

func (f *fakeLogs) opts() []agent.LogOptions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]agent.LogOptions(nil), f.calls...)
}

// startNode serves a node API over TLS on loopback with the node's
// certificate, answering from logs.
func startNode(t *testing.T, ca *pki.CA, id string, logs LogSource) *httptest.Server {
	t.Helper()
	return startNodeDeps(t, ca, id, Deps{Logs: logs})
}

// startNodeDeps is startNode with the server's collaborators.
func startNodeDeps(t *testing.T, ca *pki.CA, id string, d Deps) *httptest.Server {
	t.Helper()
	s := New(Config{Cert: nodeCert(t, ca, id, pki.RoleAgent), CA: ca.Pool()}, d)
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.TLS = s.TLSConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func hostOf(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "https://") }

// sortedLines splits output into its lines, sorted.
func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	sortStrings(lines)
	return lines
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
