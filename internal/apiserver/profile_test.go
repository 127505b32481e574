package apiserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/store"
)

func TestProfileEndpoint(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	st.Txn(context.Background(), nil,
		store.Put(store.TokenKey(HashToken("admin-tok")), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})),
		store.Put(store.TokenKey(HashToken("viewer-tok")), store.Encode(store.TokenRecord{Name: "v", Role: "viewer"})))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(Config{}, Deps{Store: st, Log: log, Events: events.NewRecorder(st, log), Registry: prometheus.NewRegistry()})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(path, tok string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	gzipped := []byte{0x1f, 0x8b} // pprof's format is a gzip'd protocol buffer

	tests := []struct {
		name, path, tok string
		code            int
		body            []byte
	}{
		{"cpu", "/v1/debug/profile/cpu?seconds=1", "admin-tok", 200, gzipped},
		{"heap", "/v1/debug/profile/heap", "admin-tok", 200, gzipped},
		{"goroutine", "/v1/debug/profile/goroutine", "admin-tok", 200, gzipped},
		{"unknown profile", "/v1/debug/profile/nope", "admin-tok", 404, []byte(`no profile \"nope\"`)},
		{"seconds zero", "/v1/debug/profile/cpu?seconds=0", "admin-tok", 400, []byte("from 1 to 120")},
		{"seconds too many", "/v1/debug/profile/cpu?seconds=121", "admin-tok", 400, []byte("from 1 to 120")},
		{"seconds not a number", "/v1/debug/profile/cpu?seconds=1s", "admin-tok", 400, []byte("from 1 to 120")},
		{"viewer refused", "/v1/debug/profile/heap", "viewer-tok", 403, []byte(`"forbidden"`)},
		{"no token", "/v1/debug/profile/heap", "", 401, []byte("missing bearer token")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, b := get(tc.path, tc.tok)
			if code != tc.code || !bytes.Contains(b, tc.body) || (tc.code == 200 && !bytes.HasPrefix(b, tc.body)) {
				t.Fatalf("GET %s: %d %.200q, want %d with %q", tc.path, code, b, tc.code, tc.body)
			}
		})
	}

	t.Run("cpu busy", func(t *testing.T) {
		if err := pprof.StartCPUProfile(io.Discard); err != nil {
			t.Skipf("a CPU profile runs already (go test -cpuprofile?): %v", err)
		}
		defer pprof.StopCPUProfile()
		if code, b := get("/v1/debug/profile/cpu?seconds=1", "admin-tok"); code != 409 || !bytes.Contains(b, []byte("already")) {
			t.Fatalf("got %d %s, want 409", code, b)
		}
	})
}
