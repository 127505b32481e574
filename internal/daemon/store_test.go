package daemon

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

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
