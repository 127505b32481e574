package cli

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
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
)

// TestBackupCommands runs `ruche backup create` against an API on a real
// store, then `ruche backup restore` of the file.
func TestBackupCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.StartEmbedded(store.EmbeddedConfig{Dir: filepath.Join(dir, "store"), ClientAddr: loopbackPort(t), PeerAddr: loopbackPort(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Txn(ctx, nil, store.Put(store.ClusterKey, store.Encode(store.ClusterRecord{ID: "feedc0de"})),
		store.Put(store.TokenKey(apiserver.HashToken("tok")), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})))
	box, err := secret.LoadOrCreate(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.LoadOrCreateCA(filepath.Join(dir, "pki"), "feedc0de"); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := apiserver.New(apiserver.Config{}, apiserver.Deps{Store: st, Secrets: box, Log: log, Events: events.NewRecorder(st, log),
		Registry: prometheus.NewRegistry(), Backup: &backup.Source{Store: st, ClusterID: "feedc0de",
			CACertFile: filepath.Join(dir, "pki", "ca.crt"), CAKeyFile: filepath.Join(dir, "pki", "ca.key"), SecretKeyFile: filepath.Join(dir, "secret.key")}})
	conf := serveAPI(t, api, "tok")

	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := Main(args, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	file := filepath.Join(dir, "b.tar.gz")
	code, out := run("--config", conf, "backup", "create", file)
	if code != 0 || !strings.Contains(out, "cluster feedc0de") || !strings.Contains(out, "keep it private") {
		t.Fatalf("create: exit %d: %s", code, out)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Errorf("partial file left: %v", err)
	}
	if code, out := run("--config", conf, "backup", "create", file); code == 0 || !strings.Contains(out, "exists") {
		t.Errorf("create over an existing file: exit %d: %s", code, out)
	}

	target := filepath.Join(dir, "restored")
	peer := loopbackPort(t)
	code, out = run("backup", "restore", file, "--data-dir", target, "--store-peer-addr", peer)
	if code != 0 || !strings.Contains(out, "now run: ruche up --data-dir "+target+" --store-peer-addr "+peer+"\n") {
		t.Fatalf("restore: exit %d: %s", code, out)
	}
	if !strings.Contains(out, "tokens revoked since then work again") {
		t.Errorf("restore does not say that revoked tokens work again: %s", out)
	}
	code, out = run("backup", "restore", file, "--data-dir", target, "--store-peer-addr", peer)
	if code == 0 || !strings.Contains(out, "admin.conf exists") || !strings.Contains(out, "nothing was written") {
		t.Fatalf("restore into a restored data dir: exit %d: %s", code, out)
	}
	bad := filepath.Join(dir, "bad.tar.gz")
	b, _ := os.ReadFile(file)
	os.WriteFile(bad, b[:len(b)/2], 0o600)
	code, out = run("backup", "restore", bad, "--data-dir", filepath.Join(dir, "other"))
	if code == 0 || !strings.Contains(out, "not a valid ruche backup") || !strings.Contains(out, "nothing was written") {
		t.Fatalf("restore of a damaged file: exit %d: %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); !os.IsNotExist(err) {
		t.Errorf("damaged restore created the data dir: %v", err)
	}
}

// serveAPI serves api over TLS for the test and writes a client config
// for it with token tok; it returns the config's path.
func serveAPI(t *testing.T, api *apiserver.Server, tok string) string {
	t.Helper()
	srv := httptest.NewTLSServer(api.Handler())
	t.Cleanup(srv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	conf := filepath.Join(t.TempDir(), "cli.conf")
	if err := (&client.Config{Servers: []string{srv.URL}, CA: string(caPEM), Token: tok}).Write(conf); err != nil {
		t.Fatal(err)
	}
	return conf
}

func loopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
