package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
)

// TestDeployWhenStoreFull: on a real store over its quota, a deploy fails
// with 507 "store is full: ..." rather than a raw etcd error, and status
// says so.
func TestDeployWhenStoreFull(t *testing.T) {
	addr := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	st, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir(), ClientAddr: addr(), PeerAddr: addr(), QuotaBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.Txn(ctx, nil, store.Put(store.TokenKey(HashToken(token)), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})))
	big := bytes.Repeat([]byte("x"), 1<<20)
	for i := 0; ; i++ {
		if _, err := st.Txn(ctx, nil, store.Put("/t/fill", big)); errors.Is(err, store.ErrFull) {
			break
		} else if err != nil || i > 100 {
			t.Fatalf("filling the store: %v after %d writes", err, i)
		}
	}
	box, _ := secret.New(bytes.Repeat([]byte{7}, 32))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(Config{}, Deps{Store: st, Secrets: box, Log: log, Events: events.NewRecorder(st, log), Registry: prometheus.NewRegistry(),
		StoreStatus: st.StoreStatus})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	call := func(method, path string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	b, _ := json.Marshal(client.DeployRequest{Project: web(1)})
	code, body := call("PUT", "/v1/projects/shop", b)
	var e client.Error
	json.Unmarshal(body, &e)
	if code != http.StatusInsufficientStorage || e.Code != "store_full" || !strings.HasPrefix(e.Message, "store is full: ") {
		t.Fatalf("deploy on a full store: got %d %s", code, body)
	}
	code, body = call("GET", "/v1/status", nil)
	var stat client.Status
	if err := json.Unmarshal(body, &stat); err != nil || code != 200 {
		t.Fatalf("status: %d %s", code, body)
	}
	if stat.Store.Healthy || len(stat.Store.Warnings) == 0 || !strings.Contains(stat.Store.Warnings[0], "store is full") {
		t.Errorf("status of a full store: %+v", stat.Store)
	}
}
