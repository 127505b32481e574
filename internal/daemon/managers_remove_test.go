package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
	"github.com/ruche-platform/ruche/internal/testports"
)

// startMember starts the store member name of a manager whose data dir is
// dir, with peer TLS under ca, joining initialCluster when it is set.
func startMember(t *testing.T, ca *pki.CA, caDir, dir, name, peer, initialCluster string) *store.Embedded {
	t.Helper()
	pkiDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writePeerCert(ca, pkiDir, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	m, err := store.StartEmbedded(store.EmbeddedConfig{Dir: filepath.Join(dir, "store"), Name: name, ClientAddr: testports.Free(t), PeerAddr: peer,
		PeerTLS: &store.PeerTLS{CertFile: filepath.Join(pkiDir, peerCertFile), KeyFile: filepath.Join(pkiDir, peerKeyFile),
			CAFile: filepath.Join(caDir, "ca.crt"), AllowedCNs: []string{peerCN}},
		InitialCluster: initialCluster, Existing: initialCluster != "", ElectionMs: 500, HeartbeatMs: 50})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// TestRemoveManagerItself: `ruche manager rm` sent to the manager it
// removes succeeds. Its store member stops once the removal is applied, so
// nothing may be written through it afterwards.
func TestRemoveManagerItself(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two etcd members")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	caDir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(caDir, "test")
	if err != nil {
		t.Fatal(err)
	}
	a := startMember(t, ca, caDir, t.TempDir(), "a", testports.Free(t), "")
	peerB := testports.Free(t)
	ic, err := a.AddMember(ctx, "b", "https://"+peerB)
	if err != nil {
		t.Fatal(err)
	}
	b := startMember(t, ca, caDir, t.TempDir(), "b", peerB, ic)
	if err := b.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := a.Txn(ctx, nil, store.Put(store.ManagerKey(name), store.Encode(store.ManagerRecord{Name: name}))); err != nil {
			t.Fatal(err)
		}
	}
	m := &managers{st: b, self: "b", log: slog.New(slog.DiscardHandler)}
	// etcd refuses a removal for 5 s after a member joined (503).
	for {
		err = m.Remove(ctx, "b", false)
		if err == nil || !strings.Contains(err.Error(), "refuses to remove a member now") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("remove the manager itself: %v", err)
	}
	ms, err := a.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != "a" {
		t.Errorf("members after the removal: %+v, want a alone", ms)
	}
}
