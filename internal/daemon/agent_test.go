package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/apiserver"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// joinEnv is a manager's API (memory store, real CA, mutual TLS) on
// loopback, and a way to make join tokens in it.
type joinEnv struct {
	st  *store.Memory
	ca  *pki.CA
	url string
}

func newJoinEnv(t *testing.T) *joinEnv {
	st := store.NewMemory()
	t.Cleanup(st.Close)
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerCert(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := apiserver.New(apiserver.Config{ClusterID: "c1", ManagerURLs: []string{"https://10.9.9.9:7443"}},
		apiserver.Deps{Store: st, CA: ca, Log: log, Events: events.NewRecorder(st, log), Registry: prometheus.NewRegistry()})
	srv := httptest.NewUnstartedServer(api.Handler())
	// Not StartTLS: it would add its own certificate, served instead of
	// GetCertificate's to clients sending no server name.
	srv.Listener = tls.NewListener(srv.Listener, apiTLSConfig(pki.NewKeypair(cert), ca))
	srv.Start()
	t.Cleanup(srv.Close)
	return &joinEnv{st: st, ca: ca, url: "https://" + srv.Listener.Addr().String()}
}

func (e *joinEnv) token(t *testing.T, role string) string {
	t.Helper()
	tok := apiserver.JoinTokenPrefix + strings.Repeat("ab", 10) + role
	rec := store.JoinTokenRecord{Role: role, Expires: time.Now().Add(time.Hour)}
	if _, err := e.st.Txn(context.Background(), nil, store.Put(store.JoinTokenKey(apiserver.HashToken(tok)), store.Encode(rec))); err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestJoin(t *testing.T) {
	e := newJoinEnv(t)
	dir := t.TempDir()
	var logs bytes.Buffer
	tok := e.token(t, "agent")
	id, err := Join(context.Background(), AgentConfig{
		DataDir: dir, Join: e.url + "/ignored/path", Token: tok, CAHash: client.CAHash(e.ca.Cert), NodeName: "n2",
		Labels: map[string]string{"zone": "a"}, Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{NodeID: "n2", ClusterID: "c1", Managers: []string{e.url, "https://10.9.9.9:7443"}, AdvertiseAddr: "127.0.0.1"}
	if got := *id; got.NodeID != want.NodeID || got.ClusterID != want.ClusterID || strings.Join(got.Managers, " ") != strings.Join(want.Managers, " ") || got.AdvertiseAddr != want.AdvertiseAddr {
		t.Fatalf("identity: got %+v, want %+v", got, want)
	}
	saved, err := loadIdentity(dir)
	if err != nil || saved.NodeID != "n2" {
		t.Fatalf("saved identity %+v %v", saved, err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, nodeCertFile), filepath.Join(dir, nodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := pki.CertIdentity(pair.Leaf)
	if err != nil || pid.NodeID != "n2" || pid.Role != pki.RoleAgent {
		t.Fatalf("certificate identity %+v %v", pid, err)
	}
	var n client.Node
	if _, err := store.GetJSON(context.Background(), e.st, store.NodeKey("n2"), &n); err != nil || n.CertSerial != pid.Serial || n.Labels["zone"] != "a" {
		t.Fatalf("node record %+v %v", n, err)
	}
	if st, _ := os.Stat(filepath.Join(dir, nodeKeyFile)); st.Mode().Perm() != 0o600 {
		t.Fatalf("node.key mode %v", st.Mode().Perm())
	}
	if strings.Contains(logs.String(), tok) {
		t.Fatalf("the token is in the log:\n%s", logs.String())
	}
}

func TestJoinRefusals(t *testing.T) {
	e := newJoinEnv(t)
	other, err := pki.LoadOrCreateCA(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     func() AgentConfig
		wantErr error
		wantMsg string
	}{
		{"bad token", func() AgentConfig { return AgentConfig{Token: apiserver.JoinTokenPrefix + "nope"} }, ErrJoinRefused, "token invalid or expired"},
		{"wrong CA pin", func() AgentConfig {
			return AgentConfig{Token: e.token(t, "agent"), CAHash: client.CAHash(other.Cert)}
		}, nil, "does not match --ca-hash"},
		{"manager token", func() AgentConfig { return AgentConfig{Token: e.token(t, "manager")} }, nil, "for a manager"},
		{"no token", func() AgentConfig { return AgentConfig{} }, nil, "needs --token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			cfg.DataDir, cfg.Join, cfg.NodeName = t.TempDir(), e.url, "n2"
			_, err := Join(context.Background(), cfg)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("got %v, want %q", err, tc.wantMsg)
			}
			if cfg.Token != "" && strings.Contains(err.Error(), cfg.Token) {
				t.Fatalf("the error names the token: %v", err)
			}
			if _, err := os.Stat(filepath.Join(cfg.DataDir, identityFile)); err == nil {
				t.Fatal("a refused join saved an identity")
			}
		})
	}
	if _, err := e.st.Get(context.Background(), store.NodeKey("n2")); err == nil {
		t.Fatal("a refused join wrote a node record")
	}
}

// TestJoinSendsNoTokenToAnAgent: an agent that joined with the manager's
// address as its own (nothing stops it) holds a certificate of the cluster
// CA for that address. Standing in for the manager, it passes the CA pin
// (the CA is public) but must not be sent the token of a machine joining:
// a manager token would bring it the CA key.
func TestJoinSendsNoTokenToAnAgent(t *testing.T) {
	e := newJoinEnv(t)
	pin := client.CAHash(e.ca.Cert)
	evilDir := t.TempDir()
	if _, err := Join(context.Background(), AgentConfig{DataDir: evilDir, Join: e.url, Token: e.token(t, "agent"), CAHash: pin,
		NodeName: "evil", AdvertiseAddr: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	evil, err := tls.LoadX509KeyPair(filepath.Join(evilDir, nodeCertFile), filepath.Join(evilDir, nodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int32
	fake := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/join/ca" {
			w.Write(e.ca.CertPEM)
			return
		}
		got.Add(1)
		http.Error(w, "{}", http.StatusServiceUnavailable)
	}))
	fake.TLS = &tls.Config{Certificates: []tls.Certificate{evil}}
	fake.StartTLS()
	defer fake.Close()
	_, err = Join(context.Background(), AgentConfig{DataDir: t.TempDir(), Join: fake.URL, Token: e.token(t, "manager"), CAHash: pin, NodeName: "n3"})
	if n := got.Load(); n != 0 {
		t.Fatalf("the join request (and its token) reached an agent %d times", n)
	}
	if err == nil || !strings.Contains(err.Error(), pki.ErrAgentServer.Error()) {
		t.Fatalf("got %v, want an error naming %q", err, pki.ErrAgentServer)
	}
}

func TestRunAgentNeedsAnIdentity(t *testing.T) {
	err := RunAgent(context.Background(), AgentConfig{DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "join a cluster first") {
		t.Fatalf("got %v", err)
	}
}
