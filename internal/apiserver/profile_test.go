package apiserver

import (
	"bytes"
	"context"
	"io"
	"runtime/pprof"
	"testing"

	"github.com/ruche-platform/ruche/internal/store"
)

func TestProfileEndpoint(t *testing.T) {
	e := newEnv(t)
	e.st.Txn(context.Background(), nil, store.Put(store.TokenKey(HashToken("viewer-tok")), store.Encode(store.TokenRecord{Name: "v", Role: "viewer"})))
	gzipped := []byte{0x1f, 0x8b} // pprof's format is a gzip'd protocol buffer

	tests := []struct {
		name, path, tok string
		code            int
		body            []byte
	}{
		{"cpu", "/v1/debug/profile/cpu?seconds=1", token, 200, gzipped},
		{"heap", "/v1/debug/profile/heap", token, 200, gzipped},
		{"goroutine", "/v1/debug/profile/goroutine", token, 200, gzipped},
		{"unknown profile", "/v1/debug/profile/nope", token, 404, []byte(`no profile \"nope\"`)},
		{"seconds zero", "/v1/debug/profile/cpu?seconds=0", token, 400, []byte("from 1 to 120")},
		{"seconds too many", "/v1/debug/profile/cpu?seconds=121", token, 400, []byte("from 1 to 120")},
		{"seconds not a number", "/v1/debug/profile/cpu?seconds=1s", token, 400, []byte("from 1 to 120")},
		{"viewer refused", "/v1/debug/profile/heap", "viewer-tok", 403, []byte(`"forbidden"`)},
		{"no token", "/v1/debug/profile/heap", "", 401, []byte("missing bearer token")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, b := e.call("GET", tc.path, tc.tok, "", nil)
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
		if code, b := e.call("GET", "/v1/debug/profile/cpu?seconds=1", token, "", nil); code != 409 || !bytes.Contains(b, []byte("already")) {
			t.Fatalf("got %d %s, want 409", code, b)
		}
	})
}
