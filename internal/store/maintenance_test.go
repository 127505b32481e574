package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/testports"
)

func startEmbedded(t *testing.T, quota int64) *Embedded {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), ClientAddr: testports.Free(t), PeerAddr: testports.Free(t), QuotaBytes: quota})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// TestExternalConformance runs the Store contract over a network client to
// a second etcd started here: "the external cluster".
func TestExternalConformance(t *testing.T) {
	addr := testports.Free(t)
	ext, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), ClientAddr: addr, PeerAddr: testports.Free(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	x, err := ConnectExternal(context.Background(), ExternalConfig{Endpoints: []string{"http://" + addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if got, want := x.Endpoint(), "etcd http://"+addr; got != want {
		t.Errorf("endpoint: got %q, want %q", got, want)
	}
	conformance(t, x)
	st := x.StoreStatus(context.Background())
	if !st.Healthy || st.DBSize == 0 || st.Quota != 2<<30 || st.Members != 1 || st.Revision == 0 {
		t.Errorf("status: got %+v", st)
	}
	// What the external client wrote is in the other member's own store.
	if _, err := ext.Get(context.Background(), "/t/c"); err != nil {
		t.Errorf("external member does not have the write: %v", err)
	}
}

func TestExternalTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.ServerCert(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	csr, key, err := pki.NewNodeKey("mgr")
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := ca.SignNode(csr, pki.NodeRequest{ID: "mgr", Role: pki.RoleManager})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "client.crt"), cert)
	writeFile(t, filepath.Join(dir, "client.key"), key)

	addr := testports.Free(t)
	ec := embed.NewConfig()
	ec.Dir = filepath.Join(dir, "etcd")
	cu := url.URL{Scheme: "https", Host: addr}
	pu := url.URL{Scheme: "http", Host: testports.Free(t)}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.ClientTLSInfo.CertFile = filepath.Join(dir, "api.crt")
	ec.ClientTLSInfo.KeyFile = filepath.Join(dir, "api.key")
	ec.ClientTLSInfo.TrustedCAFile = filepath.Join(dir, "ca.crt")
	ec.ClientTLSInfo.ClientCertAuth = true
	ec.LogLevel = "error"
	ec.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("tls etcd not ready")
	}

	ctx := context.Background()
	ep := []string{"https://" + addr}
	good := ExternalConfig{Endpoints: ep, CAFile: filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key"), DialTimeout: 2 * time.Second}
	x, err := ConnectExternal(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if _, err := x.Txn(ctx, nil, Put("/t/tls", []byte("yes"))); err != nil {
		t.Fatal(err)
	}
	if kv, err := x.Get(ctx, "/t/tls"); err != nil || string(kv.Value) != "yes" {
		t.Fatalf("get over TLS: %+v %v", kv, err)
	}

	bad := []struct {
		name string
		cfg  ExternalConfig
		want string
	}{
		{"no client certificate", ExternalConfig{Endpoints: ep, CAFile: good.CAFile, DialTimeout: time.Second}, "cannot reach the external etcd"},
		{"tls files on http", ExternalConfig{Endpoints: []string{"http://" + addr}, CAFile: good.CAFile}, "not https"},
		{"cert without key", ExternalConfig{Endpoints: ep, CertFile: good.CertFile}, "go together"},
		{"bad url", ExternalConfig{Endpoints: []string{"127.0.0.1:2379"}}, "want http://host:port"},
		{"nothing listening", ExternalConfig{Endpoints: []string{"http://" + testports.Free(t)}, DialTimeout: time.Second}, "cannot reach the external etcd"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			x, err := ConnectExternal(ctx, tc.cfg)
			if err == nil {
				x.Close()
				t.Fatal("connected, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestNoSpace fills a store with a small quota: writes then fail with
// ErrFull, status reports the alarm, and compaction + defragmentation +
// disarm bring writes back.
func TestNoSpace(t *testing.T) {
	const quota = 8 << 20
	e := startEmbedded(t, quota)
	ctx := context.Background()
	val := bytes.Repeat([]byte("x"), 512<<10)
	var err error
	var sawNear bool
	for i := 0; i < 100; i++ {
		if _, err = e.Txn(ctx, nil, Put("/t/big", val)); err != nil {
			break
		}
		e.e.Server.Backend().ForceCommit() // sizes follow the backend's batched commits
		st := e.StoreStatus(ctx)
		if len(st.Warnings) > 0 && strings.Contains(st.Warnings[0], "nearly full") {
			sawNear = true
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("got %v, want ErrFull", err)
	}
	if !strings.HasPrefix(err.Error(), "store is full: ") {
		t.Errorf("message %q does not start with \"store is full: \"", err)
	}
	if !sawNear {
		t.Error("no near-quota warning before the store was full")
	}
	st := e.StoreStatus(ctx)
	if st.Healthy || len(st.Alarms) != 1 || st.Alarms[0] != "NOSPACE" || len(st.Warnings) == 0 || !strings.Contains(st.Warnings[0], "store is full") {
		t.Errorf("status when full: %+v", st)
	}
	if _, err := e.Get(ctx, "/t/big"); err != nil {
		t.Errorf("reads must keep working: %v", err)
	}

	// The housekeeper recovers: compact, defragment, disarm.
	before, err := e.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !before.NoSpace() {
		t.Fatalf("usage has no NOSPACE alarm: %+v", before)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewUsageCollector(e))
	if got := gather(t, reg); len(got) != 4 {
		t.Errorf("metrics when full: %v", got)
	}
	h := NewHousekeeper(HousekeeperConfig{}, e, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	h.check(ctx, time.Now())
	after, err := e.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Largest().DBSize >= before.Largest().DBSize || after.NoSpace() {
		t.Errorf("housekeeper did not recover: %+v -> %+v", before, after)
	}
	if _, err := e.Txn(ctx, nil, Put("/t/small", []byte("ok"))); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	if st := e.StoreStatus(ctx); !st.Healthy || len(st.Alarms) != 0 {
		t.Errorf("status after recovery: %+v", st)
	}
}

func TestSnapshot(t *testing.T) {
	e := startEmbedded(t, 0)
	ctx := context.Background()
	if _, err := e.Txn(ctx, nil, Put("/t/a", []byte("1")), Put("/t/b", []byte("2"))); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	info, err := e.Snapshot(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(buf.Len()) || info.Size < sha256.Size {
		t.Fatalf("info %+v, buffer %d bytes", info, buf.Len())
	}
	// etcd appends the sha256 of the database to the stream.
	b := buf.Bytes()
	sum := sha256.Sum256(b[:len(b)-sha256.Size])
	if !bytes.Equal(sum[:], b[len(b)-sha256.Size:]) {
		t.Error("snapshot does not end with the sha256 of its database")
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
