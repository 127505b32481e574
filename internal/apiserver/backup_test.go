package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/store"
	"github.com/ruche-platform/ruche/internal/store/backup"
)

type fakeBackup struct{ err error }

func (f fakeBackup) WriteBackup(ctx context.Context, w io.Writer) (backup.Meta, error) {
	if f.err != nil {
		return backup.Meta{}, f.err
	}
	_, err := io.WriteString(w, "ARCHIVE")
	return backup.Meta{Revision: 3}, err
}

func TestBackupEndpoint(t *testing.T) {
	tests := []struct {
		name      string
		src       BackupWriter
		tok       string
		wantCode  int
		wantBody  string
		wantCType string
	}{
		{"admin", fakeBackup{}, "admin-tok", 200, "ARCHIVE", "application/gzip"},
		{"viewer refused", fakeBackup{}, "viewer-tok", 403, `"forbidden"`, "application/json"},
		{"no token", fakeBackup{}, "", 401, "missing bearer token", "application/json"},
		{"not wired", nil, "admin-tok", 501, "not available", "application/json"},
		{"snapshot fails", fakeBackup{err: errors.New("etcd is gone")}, "admin-tok", 500, "etcd is gone", "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := store.NewMemory()
			defer st.Close()
			ctx := context.Background()
			st.Txn(ctx, nil,
				store.Put(store.TokenKey(HashToken("admin-tok")), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})),
				store.Put(store.TokenKey(HashToken("viewer-tok")), store.Encode(store.TokenRecord{Name: "v", Role: "viewer"})))
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			s := New(Config{}, Deps{Store: st, Log: log, Events: events.NewRecorder(st, log), Registry: prometheus.NewRegistry(), Backup: tc.src})
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/v1/backup", nil)
			if tc.tok != "" {
				req.Header.Set("Authorization", "Bearer "+tc.tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !bytes.Contains(b, []byte(tc.wantBody)) || resp.Header.Get("Content-Type") != tc.wantCType {
				t.Fatalf("got %d %q %s, want %d %s containing %q", resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.wantCode, tc.wantCType, tc.wantBody)
			}
		})
	}
}

func TestStoreFullError(t *testing.T) {
	err := fmt.Errorf("deploy shop: %w", fmt.Errorf("%w: the database reached its quota", store.ErrFull))
	got := toAPIError(err)
	if got.Status != http.StatusInsufficientStorage || got.Code != "store_full" || !strings.HasPrefix(got.Message, "store is full: ") {
		t.Fatalf("got %+v", got)
	}
}
