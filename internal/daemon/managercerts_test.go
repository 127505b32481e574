package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/internal/nodeapi"
	"github.com/ruche-platform/ruche/internal/pki"
)

// managerCertEnv is a manager's certificates as Up makes them.
type managerCertEnv struct {
	dir       string
	ca        *pki.CA
	api, node *pki.Keypair
	certs     []managerCert
}

func newManagerCertEnv(t *testing.T) *managerCertEnv {
	t.Helper()
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	ca, err := pki.LoadOrCreateCA(pkiDir, "test")
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{"127.0.0.1", "localhost"}
	api, err := ca.ServerCert(pkiDir, hosts)
	if err != nil {
		t.Fatal(err)
	}
	node, err := nodeapi.ManagerCert(ca, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if err := writePeerCert(ca, pkiDir, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	e := &managerCertEnv{dir: dir, ca: ca, api: pki.NewKeypair(api), node: pki.NewKeypair(node)}
	e.certs = managerCerts(ca, dir, hosts, e.api, "m1", e.node, "127.0.0.1")
	return e
}

// files reads the certificate files a manager keeps.
func (e *managerCertEnv) files(t *testing.T) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, f := range []string{"api.crt", "api.key", peerCertFile, peerKeyFile} {
		b, err := os.ReadFile(filepath.Join(e.dir, "pki", f))
		if err != nil {
			t.Fatal(err)
		}
		m[f] = b
	}
	return m
}

// servedSerial is the serial of the certificate a client verifying with
// the CA gets in a handshake against the API server's tls.Config.
func (e *managerCertEnv) servedSerial(t *testing.T) string {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	srv := tls.Server(s, apiTLSConfig(e.api, e.ca))
	var wg sync.WaitGroup
	wg.Go(func() { srv.Handshake() })
	cl := tls.Client(c, &tls.Config{RootCAs: e.ca.Pool(), ServerName: "127.0.0.1"})
	err := cl.Handshake()
	c.Close()
	wg.Wait()
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return cl.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestManagerCertsRenewedAfterTwoThirds(t *testing.T) {
	e := newManagerCertEnv(t)
	var logs bytes.Buffer
	now := time.Now()
	r := &managerCertRenewer{certs: e.certs, log: slog.New(slog.NewTextHandler(&logs, nil)),
		renewTiming: renewTiming{now: func() time.Time { return now }}}
	files, serial, node := e.files(t), e.servedSerial(t), e.node.Current().Leaf.SerialNumber.String()

	month := 30 * 24 * time.Hour
	now = now.Add(7 * month)
	got, err := r.check()
	if err != nil || len(got) != 0 {
		t.Fatalf("at 7 months: renewed %v (%v), want nothing", got, err)
	}
	if !equalFiles(e.files(t), files) || e.servedSerial(t) != serial || e.node.Current().Leaf.SerialNumber.String() != node {
		t.Fatal("a certificate changed before 2/3 of its lifetime")
	}
	if logs.Len() != 0 {
		t.Errorf("logged before 2/3: %s", logs.String())
	}

	now = now.Add(2 * month)
	got, err = r.check()
	if want := []string{"api", "node", "store_peer"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("at 9 months: renewed %v (%v), want %v", got, err, want)
	}
	after := e.files(t)
	for f, b := range files {
		if bytes.Equal(after[f], b) {
			t.Errorf("%s not rewritten", f)
		}
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(e.dir, "pki", peerCertFile), filepath.Join(e.dir, "pki", peerKeyFile)); err != nil {
		t.Errorf("new peer pair: %v", err)
	}
	if s := e.servedSerial(t); s == serial {
		t.Error("the API server still serves the old certificate")
	} else if want := e.api.Current().Leaf.SerialNumber.String(); s != want {
		t.Errorf("served serial %s, want the renewed %s", s, want)
	}
	if e.node.Current().Leaf.SerialNumber.String() == node {
		t.Error("the manager's node certificate was not renewed")
	}
	if !strings.Contains(logs.String(), "manager certificates renewed") || !strings.Contains(logs.String(), "api_expires") {
		t.Errorf("log: %s", logs.String())
	}
}

// The loop started with every manager renews hourly, without a restart.
func TestManagerCertsLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newManagerCertEnv(t) // signed at the bubble's time
		var logs bytes.Buffer
		r := &managerCertRenewer{certs: e.certs, log: slog.New(slog.NewTextHandler(&logs, nil))}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { r.run(ctx); close(done) }()
		serial := e.servedSerial(t)

		time.Sleep(7 * 30 * 24 * time.Hour) // under 2/3 of a year
		synctest.Wait()
		if logs.Len() != 0 || e.servedSerial(t) != serial {
			t.Fatalf("renewed before 2/3: %s", logs.String())
		}
		time.Sleep(2 * 30 * 24 * time.Hour) // past it: renewed once, at the next hourly check
		synctest.Wait()
		for _, c := range []string{"api_expires", "node_expires", "store_peer_expires"} {
			if n := strings.Count(logs.String(), c); n != 1 {
				t.Errorf("%s: renewed %d times, want 1: %s", c, n, logs.String())
			}
		}
		if e.servedSerial(t) == serial {
			t.Error("the API server still serves the old certificate")
		}
		cancel()
		<-done
	})
}

func equalFiles(a, b map[string][]byte) bool {
	for k, v := range a {
		if !bytes.Equal(b[k], v) {
			return false
		}
	}
	return len(a) == len(b)
}
