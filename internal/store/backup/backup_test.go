package backup_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/apiserver"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
	"github.com/ruche-platform/ruche/internal/store/backup"
	"github.com/ruche-platform/ruche/internal/testports"
)

const clusterID = "c0ffee0123456789"

// manager is a data dir with a running store and the API on it.
type manager struct {
	dir string
	st  *store.Embedded
	api *httptest.Server
	cli *client.Client
	ca  *pki.CA
	box *secret.Box
}

// startManager opens (or creates) a manager's state in dir as `ruche up`
// does, serves the API on it and returns a client using token.
func startManager(t *testing.T, dir, token string) *manager {
	t.Helper()
	ctx := context.Background()
	st, err := store.StartEmbedded(store.EmbeddedConfig{Dir: filepath.Join(dir, "store"), ClientAddr: testports.Free(t), PeerAddr: testports.Free(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Get(ctx, store.ClusterKey); errors.Is(err, store.ErrNotFound) {
		st.Txn(ctx, nil, store.Put(store.ClusterKey, store.Encode(store.ClusterRecord{ID: clusterID})),
			store.Put(store.TokenKey(apiserver.HashToken(token)), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})))
	}
	box, err := secret.LoadOrCreate(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadOrCreateCA(filepath.Join(dir, "pki"), clusterID)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src := &backup.Source{Store: st, ClusterID: clusterID, Version: "test",
		CACertFile: filepath.Join(dir, "pki", "ca.crt"), CAKeyFile: filepath.Join(dir, "pki", "ca.key"),
		SecretKeyFile: filepath.Join(dir, "secret.key"), TempDir: t.TempDir()}
	api := apiserver.New(apiserver.Config{ClusterID: clusterID}, apiserver.Deps{
		Store: st, Secrets: box, Log: log, Events: events.NewRecorder(st, log), Backup: src, Registry: prometheus.NewRegistry(),
	})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	c, err := client.New(&client.Config{Servers: []string{srv.URL}, CA: string(ca.CertPEM), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return &manager{dir: dir, st: st, api: srv, cli: c, ca: ca, box: box}
}

func projects() []client.ProjectSpec {
	return []client.ProjectSpec{
		{Name: "shop", Services: map[string]client.ServiceSpec{
			"web": {Name: "web", Image: "shop-web:1", Replicas: 3, Environment: map[string]string{"MODE": "prod"},
				Routes:  []client.RouteSpec{{Host: "shop.example.org", Port: 8080}, {Host: "example.org", PathPrefix: "/shop", Port: 8080}},
				Secrets: []client.FileRef{{Source: "db_password"}}},
			"db": {Name: "db", Image: "postgres:16", Replicas: 1},
		}, Secrets: map[string]client.SecretSpec{"db_password": {Name: "db_password", Data: []byte("s3cret")}}},
		{Name: "pad", Services: map[string]client.ServiceSpec{
			"pad": {Name: "pad", Image: "etherpad:2", Replicas: 2, Routes: []client.RouteSpec{{Host: "pad.example.org", Port: 9001}}},
		}},
	}
}

// view is what must survive a backup: projects (services, specs) and routes.
func view(t *testing.T, c *client.Client) string {
	t.Helper()
	ctx := context.Background()
	ps, err := c.Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(map[string]any{"projects": ps, "routes": rs}, "", " ")
	return string(b)
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	src := startManager(t, filepath.Join(root, "old"), "old-admin")
	for _, p := range projects() {
		if _, err := src.cli.Deploy(ctx, &p, false); err != nil {
			t.Fatalf("deploy %s: %v", p.Name, err)
		}
	}
	want := view(t, src.cli)
	if !strings.Contains(want, "pad.example.org") || !strings.Contains(want, "shop-web:1") {
		t.Fatalf("deploys did not land: %s", want)
	}

	file := filepath.Join(root, "backup.tar.gz")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.cli.Backup(ctx, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	meta, err := backup.VerifyFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if meta.ClusterID != clusterID || meta.Revision == 0 || meta.Keys == 0 || meta.Format != backup.Format {
		t.Fatalf("meta: %+v", meta)
	}

	// A change after the backup is not in it.
	late := client.ProjectSpec{Name: "late", Services: map[string]client.ServiceSpec{"x": {Name: "x", Image: "x:1", Replicas: 1}}}
	if _, err := src.cli.Deploy(ctx, &late, false); err != nil {
		t.Fatal(err)
	}

	newDir := filepath.Join(root, "new")
	in, _ := os.Open(file)
	res, err := backup.Restore(ctx, in, backup.RestoreConfig{DataDir: newDir, PeerAddr: testports.Free(t)})
	in.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.Revision != meta.Revision || res.AdminConf != filepath.Join(newDir, "admin.conf") {
		t.Errorf("result: %+v", res)
	}
	for _, name := range []string{"admin.conf", "secret.key", "pki/ca.key", "pki/ca.crt"} {
		fi, err := os.Stat(filepath.Join(newDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	conf, err := client.LoadConfig(res.AdminConf)
	if err != nil {
		t.Fatal(err)
	}
	if conf.Token == "old-admin" || conf.CA != string(src.ca.CertPEM) {
		t.Errorf("admin.conf: want a fresh token and the cluster CA, got %+v", conf)
	}
	src.st.Close()

	dst := startManager(t, newDir, conf.Token)
	if dst.ca.Cert.SerialNumber.Cmp(src.ca.Cert.SerialNumber) != 0 {
		t.Error("restored manager has another CA")
	}
	if got := view(t, dst.cli); got != want {
		t.Errorf("restored view differs:\n got %s\nwant %s", got, want)
	}
	// The secret opens with the restored key.
	var sr store.SecretRecord
	if _, err := store.GetJSON(ctx, dst.st, store.SecretKey("shop", "db_password"), &sr); err != nil {
		t.Fatal(err)
	}
	if plain, err := dst.box.Open(sr.Sealed); err != nil || string(plain) != "s3cret" {
		t.Errorf("secret after restore: %q %v", plain, err)
	}
	// The old admin token came back with the snapshot.
	old, _ := client.New(&client.Config{Servers: []string{dst.api.URL}, CA: string(dst.ca.CertPEM), Token: "old-admin"})
	if _, err := old.Projects(ctx); err != nil {
		t.Errorf("old admin token after restore: %v", err)
	}
	// Revisions went forward: nothing watching the old store misses changes.
	rev, err := dst.st.Txn(ctx, nil, store.Put("/t/after", []byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	if rev <= meta.Revision+backup.RevisionBump {
		t.Errorf("revision after restore %d, want > %d", rev, meta.Revision+backup.RevisionBump)
	}

	t.Run("refuses a data dir with a store", func(t *testing.T) {
		in, _ := os.Open(file)
		defer in.Close()
		_, err := backup.Restore(ctx, in, backup.RestoreConfig{DataDir: newDir, PeerAddr: testports.Free(t)})
		if !errors.Is(err, backup.ErrDataDirInUse) {
			t.Fatalf("got %v, want ErrDataDirInUse", err)
		}
	})

	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	damaged := []struct {
		name string
		data []byte
		want string
	}{
		{"flipped byte", flip(good, len(good)/2), "not a valid ruche backup"},
		{"truncated", good[:len(good)*2/3], "not a valid ruche backup"},
		{"not gzip", []byte("hello"), "not gzip"},
		{"snapshot altered", repack(t, good, func(name string, b []byte) []byte {
			if name == backup.SnapshotEntry {
				return flip(b, 100)
			}
			return b
		}), "snapshot.db is damaged"},
		{"secret key missing", repack(t, good, func(name string, b []byte) []byte {
			if name == backup.SecretKeyEntry {
				return nil
			}
			return b
		}), "secret.key is missing"},
		{"ca key of another CA", repack(t, good, func(name string, b []byte) []byte {
			if name == backup.CAKeyEntry {
				return otherCAKey(t)
			}
			return b
		}), "ca.crt and ca.key"},
	}
	for _, tc := range damaged {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "data")
			_, err := backup.Restore(ctx, bytes.NewReader(tc.data), backup.RestoreConfig{DataDir: dir, PeerAddr: testports.Free(t)})
			if !errors.Is(err, backup.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tc.want)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Fatalf("restore of a damaged file left %v", left)
			}
		})
	}
}

// otherCAKey is the key of another cluster's CA.
func otherCAKey(t *testing.T) []byte {
	dir := t.TempDir()
	if _, err := pki.LoadOrCreateCA(dir, "other"); err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0xff
	return out
}

// repack rewrites the archive with each entry passed through fn (nil drops
// the entry).
func repack(t *testing.T, archive []byte, fn func(name string, b []byte) []byte) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if b = fn(hdr.Name, b); b == nil {
			continue
		}
		hdr.Size = int64(len(b))
		tw.WriteHeader(hdr)
		tw.Write(b)
	}
	tw.Close()
	gw.Close()
	return out.Bytes()
}
