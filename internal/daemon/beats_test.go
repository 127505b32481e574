package daemon

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/nodeapi"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
)

// stallingStore answers List only once released, as an embedded etcd does
// while its leader changes.
type stallingStore struct {
	store.Store
	release  chan struct{}
	returned chan struct{} // gets one value per List that returned
}

func (s stallingStore) List(ctx context.Context, prefix string) ([]store.KV, int64, error) {
	defer func() { s.returned <- struct{}{} }()
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	return s.Store.List(ctx, prefix)
}

type countingSink struct {
	mu    sync.Mutex
	beats int
}

func (c *countingSink) Beat(node string, load client.NodeLoad) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.beats++
	return 0
}

// A beat never waits for the store: the peers are read in the background
// and the beats go to those known so far, then to the new ones.
func TestBeatRelayDoesNotWaitForTheStore(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerCert(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 16)
	peer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		w.WriteHeader(http.StatusNoContent)
	}))
	peer.TLS = apiTLSConfig(pki.NewKeypair(cert), ca)
	peer.TLS.Certificates = []tls.Certificate{cert} // else httptest puts its own first
	peer.StartTLS()
	defer peer.Close()

	mem := store.NewMemory()
	defer mem.Close()
	mem.Txn(context.Background(), nil, store.Put(store.ManagerKey("m2"), store.Encode(store.ManagerRecord{Name: "m2", APIURL: peer.URL})))
	st := stallingStore{Store: mem, release: make(chan struct{}), returned: make(chan struct{}, 16)}
	mc, err := nodeapi.ManagerCert(ca, "m1")
	if err != nil {
		t.Fatal(err)
	}
	mcert := pki.NewKeypair(mc)
	local := &countingSink{}
	b := newBeatRelay(local, st, "https://127.0.0.1:1", ca, mcert, slog.New(slog.DiscardHandler))

	done := make(chan struct{})
	go func() {
		b.Beat("n3", client.NodeLoad{})
		b.Beat("n3", client.NodeLoad{})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Beat waited for the store")
	}
	select {
	case <-st.returned:
		t.Fatal("the beats returned only after the store read gave up: they waited for it")
	default: // the read still stalls, in the background
	}
	if local.beats != 2 {
		t.Errorf("local beats: %d, want 2", local.beats)
	}
	close(st.release) // the store answers: the next beat reaches m2
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.Beat("n3", client.NodeLoad{})
		select {
		case <-got:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no beat reached the peer after the store answered")
		}
	}
}

// A manager missing from one read of the records (its lease given up and
// taken anew while the store's leader changes) still gets the beats.
func TestBeatRelayKeepsPeersAWhile(t *testing.T) {
	mem := store.NewMemory()
	defer mem.Close()
	put := func(urls ...string) {
		ops := []store.Op{store.Delete(store.ManagerKey("a")), store.Delete(store.ManagerKey("b"))}
		for i, u := range urls {
			name := string(rune('a' + i))
			ops = append(ops, store.Put(store.ManagerKey(name), store.Encode(store.ManagerRecord{Name: name, APIURL: u})))
		}
		if _, err := mem.Txn(context.Background(), nil, ops...); err != nil {
			t.Fatal(err)
		}
	}
	b := &beatRelay{st: mem, self: "https://self", seen: map[string]time.Time{}, busy: map[string]bool{}}
	put("https://m2", "https://self")
	b.refreshPeers()
	put() // m2's record is gone for a moment
	b.refreshPeers()
	if got := b.peers; len(got) != 1 || got[0] != "https://m2" {
		t.Errorf("peers after a read without m2: %v, want m2 kept", got)
	}
	b.seen["https://m2"] = time.Now().Add(-peerKeep - time.Second) // long gone
	b.refreshPeers()
	if len(b.peers) != 0 {
		t.Errorf("peers after %v without m2: %v, want none", peerKeep, b.peers)
	}
}
