package daemon

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
)

func TestOpenStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clientAddr := loopbackAddr(t)
	emb, err := openStore(ctx, Config{DataDir: dir, NodeID: "n1", StoreAddr: clientAddr, StorePeerAddr: loopbackAddr(t),
		Store: StoreConfig{Quota: 128 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	if _, ok := emb.(*store.Embedded); !ok {
		t.Fatalf("got %T, want the embedded store", emb)
	}
	if st := emb.StoreStatus(ctx); st.Quota != 128<<20 || st.Endpoint != "embedded etcd" || !st.Healthy {
		t.Errorf("embedded status: %+v", st)
	}
	if _, err := emb.Txn(ctx, nil, store.Put(store.ClusterKey, []byte(`{"id":"x"}`))); err != nil {
		t.Fatal(err)
	}

	// The embedded member's client listener stands for an external cluster.
	ep := "http://" + clientAddr
	ext, err := openStore(ctx, Config{DataDir: filepath.Join(dir, "other"), Store: StoreConfig{Endpoints: []string{ep}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	if _, ok := ext.(*store.External); !ok {
		t.Fatalf("got %T, want the external store", ext)
	}
	if kv, err := ext.Get(ctx, store.ClusterKey); err != nil || !strings.Contains(string(kv.Value), `"x"`) {
		t.Fatalf("external store does not see the cluster's data: %+v %v", kv, err)
	}
	if st := ext.StoreStatus(ctx); st.Endpoint != "etcd "+ep || st.Quota != 128<<20 {
		t.Errorf("external status: %+v", st)
	}
}

func loopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestCheckKeys(t *testing.T) {
	ctx := context.Background()
	withCluster := func(t *testing.T, sealWith []byte) *store.Memory {
		st := store.NewMemory()
		t.Cleanup(st.Close)
		st.Txn(ctx, nil, store.Put(store.ClusterKey, store.Encode(store.ClusterRecord{ID: "c1"})))
		if sealWith != nil {
			box, _ := secret.New(sealWith)
			sealed, _ := box.Seal([]byte("pw"))
			st.Txn(ctx, nil, store.Put(store.SecretKey("p", "db"), store.Encode(store.SecretRecord{Sealed: sealed})))
		}
		return st
	}
	keyA, keyB := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	dataDir := func(t *testing.T, key []byte) string {
		dir := t.TempDir()
		if key != nil {
			os.WriteFile(filepath.Join(dir, "secret.key"), key, 0o600)
			if _, err := pki.LoadOrCreateCA(filepath.Join(dir, "pki"), "c1"); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	tests := []struct {
		name    string
		st      func(t *testing.T) store.Store
		dirKey  []byte
		wantErr string
	}{
		{"new cluster", func(t *testing.T) store.Store { m := store.NewMemory(); t.Cleanup(m.Close); return m }, nil, ""},
		{"existing cluster, empty data dir", func(t *testing.T) store.Store { return withCluster(t, keyA) }, nil, "secret.key is missing"},
		{"matching key", func(t *testing.T) store.Store { return withCluster(t, keyA) }, keyA, ""},
		{"no secrets yet", func(t *testing.T) store.Store { return withCluster(t, nil) }, keyB, ""},
		{"another cluster's key", func(t *testing.T) store.Store { return withCluster(t, keyA) }, keyB, "does not open the secrets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkKeys(ctx, tc.st(t), dataDir(t, tc.dirKey))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestStoreAddrsOnLoopback: the embedded store's listeners have no
// authentication without peers' TLS; `ruche up` refuses to open them to
// other machines, before it writes anything.
func TestStoreAddrsOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{}, ""},
		{"loopback", Config{StoreAddr: "127.0.0.1:7479", StorePeerAddr: "[::1]:7480"}, ""},
		{"localhost", Config{StoreAddr: "localhost:7479"}, ""},
		{"client on every address", Config{StoreAddr: ":7479"}, "--store-addr"},
		{"client on 0.0.0.0", Config{StoreAddr: "0.0.0.0:7479"}, "--store-addr"},
		{"client on a LAN address, with peers", Config{StoreAddr: "192.0.2.1:7479", AdvertiseAddr: "192.0.2.1"}, "--store-addr"},
		{"peer on every address, no peers' TLS", Config{StorePeerAddr: "0.0.0.0:7480"}, "--store-peer-addr"},
		{"peer on a LAN address, peers' TLS", Config{StorePeerAddr: "192.0.2.1:7480", AdvertiseAddr: "192.0.2.1"}, ""},
		{"no port", Config{StoreAddr: "127.0.0.1"}, "--store-addr"},
		{"external store", Config{StoreAddr: "0.0.0.0:7479", Store: StoreConfig{Endpoints: []string{"https://192.0.2.9:2379"}}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStoreAddrs(tc.cfg)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := Up(context.Background(), Config{DataDir: dir, StoreAddr: "0.0.0.0:7479"}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("up: got %v, want a refusal", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a refused up made its data dir")
	}
}
