package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/pebbletest"
	"github.com/ruche-platform/ruche/internal/store"
)

// TestACME obtains certificates from a real ACME server, Debian's pebble,
// through HTTP-01 and TLS-ALPN-01, and checks a node that did not order a
// certificate serves the one another node obtained.
func TestACME(t *testing.T) {
	pebbletest.Need(t)

	// The test's own HTTP and HTTPS listeners stand for the proxy; pebble
	// validates against them. They serve whichever Manager is current.
	var current atomic.Pointer[Manager]
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := current.Load(); m != nil && m.HandleHTTPChallenge(w, r) {
			return
		}
		http.NotFound(w, r)
	})}
	go srv.Serve(httpLn)
	t.Cleanup(func() { srv.Close() })
	tlsLn, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			m := current.Load()
			if m == nil {
				return nil, errors.New("no manager")
			}
			return m.GetCertificate(h)
		},
		NextProtos: []string{"http/1.1", ALPNChallengeProto},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tlsLn.Close() })
	go serveHandshakes(tlsLn)

	p := pebbletest.Start(t, port(t, httpLn.Addr()), port(t, tlsLn.Addr()))
	const host = "app.ruche.test"

	newManager := func(t *testing.T, st store.Store, cfg Config, reg prometheus.Registerer) *Manager {
		cfg.ACMEDirectory, cfg.ACMERoots, cfg.ACMEEmail = p.Directory, p.ServerRoots, "ops@ruche.test"
		cfg.HTTPAddr, cfg.HTTPSAddr = httpLn.Addr().String(), tlsLn.Addr().String()
		m, _ := startManager(t, cfg, Deps{Store: st, Opener: testBox(t), Metrics: reg, Log: debugLog()})
		return m
	}

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"http-01", Config{DisableTLSALPN01: true}},
		{"tls-alpn-01", Config{DisableHTTP01: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := store.NewMemory()
			t.Cleanup(st.Close)
			reg := prometheus.NewRegistry()
			m := newManager(t, st, tc.cfg, reg)
			current.Store(m)
			if _, err := m.GetCertificate(hello(host)); !errors.Is(err, ErrUnknownHost) {
				t.Fatalf("before Manage: got %v, want ErrUnknownHost", err)
			}
			changed := m.Changed()
			m.Manage(context.Background(), []Want{{Host: host, Mode: client.TLSACME, Project: "p", Service: "web"}})
			// Obtaining is asynchronous: handshakes fail until it is done;
			// then the chain the server sends verifies to pebble's root.
			waitHandshake(t, tlsLn.Addr().String(), host, p.IssuerRoots)
			waitFor(t, "Changed to tell of the obtained certificate", func() bool { return isClosed(changed) })
			if got := counterValue(t, reg, "ruche_certs_acme_results_total", "obtain", "success"); got != 1 {
				t.Errorf("obtain successes: got %v, want 1", got)
			}
			if kvs, _, _ := st.List(context.Background(), StoragePrefix+"certificates/"); len(kvs) == 0 {
				t.Error("no certificate in the cluster store")
			}

			// A node started later (or this one restarted) serves the
			// stored certificate without ordering another.
			reg2 := prometheus.NewRegistry()
			later := newManager(t, st, tc.cfg, reg2)
			changed = later.Changed()
			later.Manage(context.Background(), []Want{{Host: host, Mode: client.TLSACME}})
			waitFor(t, "the later node to serve", func() bool {
				_, err := later.GetCertificate(hello(host))
				return err == nil
			})
			waitFor(t, "Changed to tell of the certificate loaded from the store", func() bool { return isClosed(changed) })
			c1, _ := m.GetCertificate(hello(host))
			c2, _ := later.GetCertificate(hello(host))
			if !leafOf(t, c1).Equal(leafOf(t, c2)) {
				t.Error("the later node serves another certificate")
			}
			if got := counterValue(t, reg2, "ruche_certs_acme_results_total", "obtain", "success"); got != 0 {
				t.Errorf("the later node ordered %v certificates, want 0", got)
			}

			// No longer wanted: no longer managed nor served.
			m.Manage(context.Background(), nil)
			waitFor(t, "the certificate to leave certmagic's cache", func() bool {
				m.mu.RLock()
				a := m.acme
				m.mu.RUnlock()
				return len(a.cache.AllMatchingCertificates(host)) == 0
			})
			if _, err := m.GetCertificate(hello(host)); !errors.Is(err, ErrUnknownHost) {
				t.Errorf("after removal: got %v, want ErrUnknownHost", err)
			}
		})
	}

	t.Run("cluster", func(t *testing.T) {
		st := store.NewMemory()
		t.Cleanup(st.Close)
		server := newManager(t, st, Config{}, nil) // answers pebble's validations
		orderer := newManager(t, st, Config{}, nil)
		current.Store(server)
		want := []Want{{Host: host, Mode: client.TLSACME}}
		// The orderer takes the lock first, so the challenge it starts is
		// answered by the other node, from the store.
		orderer.Manage(context.Background(), want)
		lockKey := StoragePrefix + "locks/issue_cert_" + host
		waitFor(t, "the orderer to take the lock", func() bool {
			_, err := st.Get(context.Background(), lockKey)
			return err == nil
		})
		server.Manage(context.Background(), want)
		served := waitHandshake(t, tlsLn.Addr().String(), host, p.IssuerRoots)
		var ordered *x509.Certificate
		waitFor(t, "the orderer to serve", func() bool {
			c, err := orderer.GetCertificate(hello(host))
			if err == nil {
				ordered = leafOf(t, c)
			}
			return err == nil
		})
		if !ordered.Equal(served) {
			t.Errorf("nodes serve different certificates: serials %v and %v", ordered.SerialNumber, served.SerialNumber)
		}
	})
}

// isClosed tells whether a Changed channel has fired.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// debugLog shows the Managers' (and certmagic's) logs on stderr when
// RUCHE_TEST_LOG is set.
func debugLog() *slog.Logger {
	if os.Getenv("RUCHE_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitHandshake retries a TLS handshake with SNI host until it succeeds
// with a chain to roots, and returns the leaf.
func waitHandshake(t *testing.T, addr, host string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	var last error
	waitFor(t, "a certificate for "+host, func() bool {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: host, RootCAs: roots})
		if err != nil {
			last = err
			return false
		}
		defer c.Close()
		leaf = c.ConnectionState().PeerCertificates[0]
		return true
	}, func() string { return fmt.Sprint(last) })
	return leaf
}

// waitFor polls cond until it holds; a test that never sees it fails after
// two minutes (a deadline for a hung test, not a speed requirement).
func waitFor(t *testing.T, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			for _, d := range detail {
				msg += d()
			}
			t.Fatalf("gave up waiting for %s: %s", what, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func serveHandshakes(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if err := c.(*tls.Conn).Handshake(); err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, c)
		}()
	}
}

func port(t *testing.T, a net.Addr) int {
	t.Helper()
	return a.(*net.TCPAddr).Port
}

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, lv ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i, l := range m.GetLabel() {
				if i >= len(lv) || l.GetValue() != lv[i] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// RenewBefore sets the renewal window of each ACME certificate from its
// own lifetime.
func TestRenewBefore(t *testing.T) {
	st := store.NewMemory()
	t.Cleanup(st.Close)
	day := 24 * time.Hour
	for _, tc := range []struct {
		name        string
		renewBefore time.Duration
		age, left   time.Duration
		want        bool
	}{
		{"default, early", 0, 10 * day, 80 * day, false},
		{"default, last third", 0, 70 * day, 20 * day, true},
		{"30 days, 20 left", 30 * day, 70 * day, 20 * day, true},
		{"10 days, 20 left", 10 * day, 70 * day, 20 * day, false},
		{"10 days, 9 left", 10 * day, 81 * day, 9 * day, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{ACMEDirectory: "https://127.0.0.1:1/dir", RenewBefore: tc.renewBefore}, Deps{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			a, err := m.newACME()
			if err != nil {
				t.Fatal(err)
			}
			defer a.stop()
			c := certmagic.Certificate{Certificate: tls.Certificate{Leaf: &x509.Certificate{
				NotBefore: time.Now().Add(-tc.age), NotAfter: time.Now().Add(tc.left), DNSNames: []string{"a.example.org"},
			}}}
			if got := c.NeedsRenewal(a.configFor(c)); got != tc.want {
				t.Errorf("needs renewal: got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRenewalReachesChanged: certmagic emits a renewal before its cache
// holds the renewed certificate. Changed fires at the event, and again
// once the cache holds the new certificate, so that a reader woken by
// Changed (the agents' certificate streams) finds it without waiting for a
// periodic recheck.
func TestRenewalReachesChanged(t *testing.T) {
	st := store.NewMemory()
	t.Cleanup(st.Close)
	m, err := New(Config{}, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	hashes := []string{"old"}
	a := &acmeState{m: m, cached: func(string) []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(hashes)
	}}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	t.Cleanup(a.cancel)

	atEvent := m.Changed()
	if err := a.onEvent(context.Background(), "cert_obtained", map[string]any{"renewal": true, "identifier": "app.ruche.test"}); err != nil {
		t.Fatal(err)
	}
	if !isClosed(atEvent) {
		t.Fatal("Changed did not fire at the renewal event")
	}
	afterEvent := m.Changed()
	time.Sleep(3 * renewalPoll)
	if isClosed(afterEvent) {
		t.Fatal("Changed fired again while the cache still held the old certificate")
	}
	mu.Lock()
	hashes = []string{"renewed"}
	mu.Unlock()
	select {
	case <-afterEvent:
	case <-time.After(30 * time.Second):
		t.Fatal("Changed did not fire once the cache held the renewed certificate")
	}
}
