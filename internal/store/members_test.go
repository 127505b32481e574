package store_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// peerFiles writes a peer certificate with CommonName cn, signed by ca,
// and returns the member's PeerTLS accepting only "etcd-peer.ruche".
func peerFiles(t *testing.T, ca *pki.CA, caDir, cn string) *store.PeerTLS {
	t.Helper()
	csr, key, err := pki.NewNodeKey(cn)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.SignNode(csr, pki.NodeRequest{ID: cn, Role: pki.RoleManager, Names: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "peer.crt"), filepath.Join(dir, "peer.key")
	if err := os.WriteFile(cf, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return &store.PeerTLS{CertFile: cf, KeyFile: kf, CAFile: filepath.Join(caDir, "ca.crt"), AllowedCNs: []string{"etcd-peer.ruche"}}
}

// startTLSMember starts member "a" with peer mutual TLS under a new
// cluster CA (closed with the test), and returns the CA and its dir for
// the members that join it.
func startTLSMember(t *testing.T) (*store.Embedded, *pki.CA, string) {
	t.Helper()
	caDir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(caDir, "test")
	if err != nil {
		t.Fatal(err)
	}
	a, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir(), Name: "a", ClientAddr: loopAddr(t), PeerAddr: loopAddr(t),
		PeerTLS: peerFiles(t, ca, caDir, "etcd-peer.ruche"), ElectionMs: 500, HeartbeatMs: 50})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, ca, caDir
}

// TestTwoMembers: a second member joins over mutual TLS with the initial
// cluster AddMember answers, as a learner, sees the first one's data, is
// promoted, and stops when removed.
func TestTwoMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two etcd members")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a, ca, caDir := startTLSMember(t)
	if got := a.PeerURL(); got[:8] != "https://" {
		t.Fatalf("peer URL %s, want https", got)
	}
	if _, err := a.Txn(ctx, nil, store.Put("/k", []byte("v"))); err != nil {
		t.Fatal(err)
	}
	peerB := loopAddr(t)
	ic, err := a.AddMember(ctx, "b", "https://"+peerB)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir(), Name: "b", ClientAddr: loopAddr(t), PeerAddr: peerB,
		PeerTLS: peerFiles(t, ca, caDir, "etcd-peer.ruche"), InitialCluster: ic, Existing: true, ElectionMs: 500, HeartbeatMs: 50})
	if err != nil {
		t.Fatalf("second member (initial cluster %q): %v", ic, err)
	}
	defer b.Close()
	kv, err := b.Get(ctx, "/k")
	if err != nil || string(kv.Value) != "v" {
		t.Fatalf("the second member reads %q, %v; want v", kv.Value, err)
	}
	ms, err := b.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Name != "a" || ms[1].Name != "b" || ms[0].Learner || !ms[1].Learner {
		t.Fatalf("members: %+v, want a and b, b a learner", ms)
	}
	if !b.IsLearner() {
		t.Fatal("b does not know it is a learner")
	}
	if err := b.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if ms, err = a.Members(ctx); err != nil || len(ms) != 2 || ms[1].Learner {
		t.Fatalf("after the promotion: %+v, %v; want b voting", ms, err)
	}
	// etcd refuses to remove a member connected for less than 5 s.
	for {
		err := a.RemoveMember(ctx, "b")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	select {
	case <-b.Err():
	case <-time.After(30 * time.Second):
		t.Fatal("the removed member did not stop")
	}
	if err := a.RemoveMember(ctx, "b"); !errors.Is(err, store.ErrNoMember) {
		t.Errorf("removing it again: %v, want ErrNoMember", err)
	}
}

// TestPeerRefusesOtherCN: a member whose peer certificate is signed by the
// cluster CA but carries another CommonName (an agent's) cannot join.
func TestPeerRefusesOtherCN(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two etcd members")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, ca, caDir := startTLSMember(t)
	peerB := loopAddr(t)
	ic, err := a.AddMember(ctx, "b", "https://"+peerB)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		b, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir(), Name: "b", ClientAddr: loopAddr(t), PeerAddr: peerB,
			PeerTLS: peerFiles(t, ca, caDir, "node7"), InitialCluster: ic, Existing: true, ElectionMs: 500, HeartbeatMs: 50})
		if err == nil {
			b.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a member with an agent's certificate joined")
		}
		t.Logf("refused: %v", err)
	case <-time.After(15 * time.Second):
		// Still waiting for its peers: refused. (Its start gives up after 60s; not waited for.)
	}
}

func loopAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRemoveUnstartedMember: a member added (a learner) that never
// started has no name; it is removed by its peer URL, so a joining
// manager that died before its member started does not stay for ever.
func TestRemoveUnstartedMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd member")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir(), Name: "a", ClientAddr: loopAddr(t), PeerAddr: loopAddr(t),
		ElectionMs: 500, HeartbeatMs: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	peer := "http://" + loopAddr(t)
	if _, err := a.AddMember(ctx, "b", peer); err != nil {
		t.Fatal(err)
	}
	ms, err := a.Members(ctx)
	if err != nil || len(ms) != 2 || ms[0].Name != "" || !ms[0].Learner {
		t.Fatalf("members: %+v, %v; want a and an unnamed learner", ms, err)
	}
	if err := a.RemoveMember(ctx, "b"); !errors.Is(err, store.ErrNoMember) {
		t.Errorf("by the name it was added under (etcd does not know it): %v, want ErrNoMember", err)
	}
	if err := a.RemoveMember(ctx, peer); err != nil {
		t.Fatalf("by its peer URL: %v", err)
	}
	if ms, err = a.Members(ctx); err != nil || len(ms) != 1 || ms[0].Name != "a" {
		t.Errorf("after: %+v, %v; want a alone", ms, err)
	}
	if err := a.RemoveMember(ctx, a.PeerURL()); !errors.Is(err, store.ErrNoMember) {
		t.Errorf("a started member by its peer URL: %v, want ErrNoMember (by name only)", err)
	}
}
