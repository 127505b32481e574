package apiserver

import (
	"context"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// TestNodeCacheWrote: a renewal this manager wrote is in the cache at
// once, so the serial it retired is refused even while the watch lags; a
// watch event older than what the cache holds changes nothing.
func TestNodeCacheWrote(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	t.Cleanup(st.Close)
	rec := client.Node{ID: "n2", CertSerial: "b", CertSerialPrev: "a"}
	rev, err := st.Txn(ctx, nil, store.Put(store.NodeKey("n2"), store.Encode(rec)))
	if err != nil {
		t.Fatal(err)
	}
	c := newNodeCache(st)
	// The cache as a lagging watch leaves it: the record before the
	// renewal, which accepted "a" (current) and "o" (previous).
	c.ready = true
	c.serials["n2"] = nodeSerials{cur: "a", prev: "o", rev: rev - 1}
	c.wrote("n2", rec, rev)
	for _, tc := range []struct{ want, got string }{{"o", "b"}, {"a", "a"}, {"b", "b"}} {
		got, ok, err := c.serial(ctx, "n2", tc.want)
		if err != nil || !ok || got != tc.got {
			t.Errorf("serial(%q): got %q %v %v, want %q", tc.want, got, ok, err, tc.got)
		}
	}
	old := client.Node{ID: "n2", CertSerial: "a", CertSerialPrev: "o"}
	c.mu.Lock()
	c.put(store.KV{Key: store.NodeKey("n2"), Value: store.Encode(old), ModRevision: rev - 1})
	c.mu.Unlock()
	if got, _, _ := c.serial(ctx, "n2", "o"); got == "o" {
		t.Error("an older watch event brought the retired serial back")
	}
}
