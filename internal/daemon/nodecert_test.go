package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
)

// signer is a fake manager: it signs node requests with the CA, or fails.
type signer struct {
	ca    *pki.CA
	fail  atomic.Bool
	calls atomic.Int32
}

func (s *signer) renew(_ context.Context, csr []byte) ([]byte, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return nil, errors.New("no manager answered")
	}
	cert, _, err := s.ca.SignNode(csr, pki.NodeRequest{ID: "n2", Role: pki.RoleAgent})
	return cert, err
}

func TestNodeCertRenewer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		ca, err := pki.LoadOrCreateCA(dir, "test")
		if err != nil {
			t.Fatal(err)
		}
		s := &signer{ca: ca}
		csr, key, _ := pki.NewNodeKey("n2")
		certPEM, _ := s.renew(context.Background(), csr)
		s.calls.Store(0)
		certPath, keyPath := filepath.Join(dir, nodeCertFile), filepath.Join(dir, nodeKeyFile)
		if err := pki.WritePair(certPath, keyPath, certPEM, key); err != nil {
			t.Fatal(err)
		}
		first, err := pki.LoadPair(certPath, keyPath)
		if err != nil {
			t.Fatal(err)
		}
		pair := pki.NewKeypair(first)
		var logs bytes.Buffer
		var renewals atomic.Int32
		reg := prometheus.NewRegistry()
		r := &nodeCertRenewer{certPath: certPath, keyPath: keyPath, pair: pair, roots: ca.Pool(), renew: s.renew,
			onRenew: func() { renewals.Add(1) }, expiry: newNodeExpiryGauge(reg), log: slog.New(slog.NewTextHandler(&logs, nil))}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		// Not due for 2/3 of its year: no request at all.
		time.Sleep(pki.NodeCertLifetime / 2)
		synctest.Wait()
		if got := s.calls.Load(); got != 0 {
			t.Fatalf("requests before 2/3 of the lifetime: got %d, want 0", got)
		}
		if got, want := gaugeValue(r.expiry), float64(first.Leaf.NotAfter.Unix()); got != want {
			t.Errorf("expiry metric: got %v, want %v", got, want)
		}
		// Due, but the managers cannot be reached: retried, the old pair kept.
		s.fail.Store(true)
		time.Sleep(pki.NodeCertLifetime/6 + 2*time.Hour)
		synctest.Wait()
		if s.calls.Load() == 0 || renewals.Load() != 0 || pair.Current().Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) != 0 {
			t.Fatalf("failing renewal: %d requests, %d renewals", s.calls.Load(), renewals.Load())
		}
		s.fail.Store(false)
		time.Sleep(nodeCertRetry)
		synctest.Wait()
		if got := renewals.Load(); got != 1 {
			t.Fatalf("renewals: got %d, want 1", got)
		}
		cur := pair.Current()
		if cur.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
			t.Fatal("the pair in use was not swapped")
		}
		onDisk, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil || !bytes.Equal(onDisk.Certificate[0], cur.Certificate[0]) {
			t.Fatalf("the pair on disk is not the new one (%v)", err)
		}
		if got, want := gaugeValue(r.expiry), float64(cur.Leaf.NotAfter.Unix()); got != want {
			t.Errorf("expiry metric: got %v, want %v", got, want)
		}
		if !strings.Contains(logs.String(), "node certificate renewed") {
			t.Errorf("no renewal logged: %s", logs.String())
		}
		// Then not again before 2/3 of the new lifetime.
		time.Sleep(pki.NodeCertLifetime / 2)
		synctest.Wait()
		if got := renewals.Load(); got != 1 {
			t.Fatalf("renewals after another half year: got %d, want 1", got)
		}
	})
}

func TestNodeCertRenewerRefusesAnotherIdentity(t *testing.T) {
	dir := t.TempDir()
	ca, _ := pki.LoadOrCreateCA(dir, "test")
	csr, key, _ := pki.NewNodeKey("n2")
	certPEM, _, _ := ca.SignNode(csr, pki.NodeRequest{ID: "n2", Role: pki.RoleAgent})
	first, _ := tls.X509KeyPair(certPEM, key)
	pair := pki.NewKeypair(first)
	r := &nodeCertRenewer{certPath: filepath.Join(dir, "c"), keyPath: filepath.Join(dir, "k"), pair: pair, roots: ca.Pool(),
		renewTiming: renewTiming{now: func() time.Time { return time.Now().Add(pki.NodeCertLifetime) }},
		renew: func(_ context.Context, csr []byte) ([]byte, error) {
			c, _, err := ca.SignNode(csr, pki.NodeRequest{ID: "n3", Role: pki.RoleAgent})
			return c, err
		}}
	if renewed, err := r.check(context.Background()); renewed || err == nil {
		t.Fatalf("got %v %v, want an error", renewed, err)
	}
	if pair.Current().Leaf.Subject.CommonName != "n2" {
		t.Fatal("the pair was swapped")
	}
}

type removedChan struct {
	c       chan struct{}
	verdict error
}

func (c removedChan) Removed() <-chan struct{} { return c.c }
func (c removedChan) Verdict() error           { return c.verdict }

func TestStopWhenRemoved(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := stopWhenRemoved(ctx, removedChan{c: make(chan struct{})}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("ctx ended: got %v, want nil", err)
	}
	for _, tc := range []struct {
		name    string
		verdict error
		want    error
		log     string
	}{
		{"removed", agent.ErrNodeRemoved, ErrNodeRemoved, "this node was removed from the cluster (ruche node rm); stopping"},
		{"replaced", agent.ErrNodeReplaced, ErrNodeReplaced, "this node's name was taken by a new join (its certificate was replaced); stopping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			c := removedChan{c: make(chan struct{}), verdict: tc.verdict}
			close(c.c)
			err := stopWhenRemoved(context.Background(), c, log)
			if err != tc.want || !strings.Contains(err.Error(), "containers are left as they are") {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got := strings.Count(logs.String(), tc.log); got != 1 {
				t.Fatalf("logged %q %d times, want once:\n%s", tc.log, got, logs.String())
			}
		})
	}
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	g.Write(&m)
	return m.GetGauge().GetValue()
}
