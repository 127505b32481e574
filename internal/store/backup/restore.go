package backup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// RevisionBump is added to the store revision on restore, and everything
// before it marked compacted: a client that watched the old store from a
// revision gets "compacted" and lists again, rather than silently missing
// the changes made after the backup (etcd's advice for restores).
const RevisionBump = 1_000_000

// RestoreConfig says where and how to restore.
type RestoreConfig struct {
	// DataDir is the new manager's data directory (`ruche up --data-dir`).
	// It may exist, but must not hold a store, a CA or a secret key.
	DataDir string
	// MemberName and PeerAddr are the restored etcd member's name and
	// peer URL host:port (defaults "ruche" and 127.0.0.1:7480, what
	// `ruche up` uses).
	MemberName, PeerAddr string
	// APIAddr is the API address written in the new admin.conf (default
	// 127.0.0.1:7443); `ruche up` corrects it if it listens elsewhere.
	APIAddr string
}

// Result is what a restore made.
type Result struct {
	Meta      Meta
	AdminConf string // path of the new admin client config
}

// Restore builds a new single-member manager data directory from the
// backup read from r. Everything is staged in a temporary directory inside
// DataDir and moved into place only once the archive has been verified,
// the snapshot restored by etcd's own restore code, opened, and the admin
// token written: a damaged file or any failure writes nothing into DataDir.
func Restore(ctx context.Context, r io.Reader, cfg RestoreConfig) (Result, error) {
	if cfg.MemberName == "" {
		cfg.MemberName = "ruche"
	}
	if cfg.PeerAddr == "" {
		cfg.PeerAddr = "127.0.0.1:7480"
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = "127.0.0.1:7443"
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return Result{}, err
	}
	if err := checkTarget(dataDir); err != nil {
		return Result{}, err
	}
	// Staged inside the data dir, on its file system: the entries are
	// renamed into place at the end, and a data dir may be a mount point
	// (staged next to it, the renames failed: "invalid cross-device link").
	_, statErr := os.Stat(dataDir)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Result{}, fmt.Errorf("restore: %w", err)
	}
	done := false
	if errors.Is(statErr, os.ErrNotExist) {
		defer func() {
			if !done {
				os.Remove(dataDir) // made here: a failed restore leaves none
			}
		}()
	}
	staging, err := os.MkdirTemp(dataDir, ".ruche-restore-")
	if err != nil {
		return Result{}, fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(staging)

	a, err := Read(r, staging)
	if err != nil {
		return Result{}, err
	}
	newDir := filepath.Join(staging, "data")
	if err := os.Mkdir(newDir, 0o700); err != nil {
		return Result{}, fmt.Errorf("restore: %w", err)
	}
	storeDir := filepath.Join(newDir, "store")
	peerURL := "http://" + cfg.PeerAddr
	err = snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        a.SnapshotPath,
		Name:                cfg.MemberName,
		OutputDataDir:       storeDir,
		PeerURLs:            []string{peerURL},
		InitialCluster:      cfg.MemberName + "=" + peerURL,
		InitialClusterToken: "ruche-" + a.Meta.ClusterID,
		RevisionBump:        RevisionBump,
		MarkCompacted:       true,
	})
	if err != nil {
		return Result{}, fmt.Errorf("restore snapshot: %w", err)
	}
	if err := os.Chmod(storeDir, 0o700); err != nil {
		return Result{}, fmt.Errorf("restore: %w", err)
	}
	token, err := adminToken(ctx, storeDir, cfg.MemberName, a.Meta.ClusterID)
	if err != nil {
		return Result{}, err
	}

	pkiDir := filepath.Join(newDir, "pki")
	if err := os.Mkdir(pkiDir, 0o700); err != nil {
		return Result{}, fmt.Errorf("restore: %w", err)
	}
	for path, b := range map[string][]byte{
		filepath.Join(pkiDir, "ca.crt"):     a.CACert,
		filepath.Join(pkiDir, "ca.key"):     a.CAKey,
		filepath.Join(newDir, "secret.key"): a.SecretKeyRaw,
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return Result{}, fmt.Errorf("restore: %w", err)
		}
	}
	conf := &client.Config{Servers: []string{apiURL(cfg.APIAddr)}, CA: string(a.CACert), Token: token}
	if err := conf.Write(filepath.Join(newDir, "admin.conf")); err != nil {
		return Result{}, fmt.Errorf("restore: admin.conf: %w", err)
	}

	if err := moveInto(newDir, dataDir); err != nil {
		return Result{}, err
	}
	done = true
	return Result{Meta: a.Meta, AdminConf: filepath.Join(dataDir, "admin.conf")}, nil
}

// restoredEntries are what a restore puts into the data dir.
var restoredEntries = []string{"admin.conf", "pki", "secret.key", "store"}

// checkTarget refuses a data dir that holds any entry the restore puts
// there: a manager's state (store/, secret.key, pki/), or another
// cluster's admin.conf or certificates, which the restore would replace,
// or (a directory) fail to move into place after writing the rest.
func checkTarget(dir string) error {
	for _, name := range restoredEntries {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%w: %s exists (restore into a new data dir)", ErrDataDirInUse, filepath.Join(dir, name))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restore: %w", err)
		}
	}
	return nil
}

// adminToken opens the restored store on free loopback ports, checks it is
// the backed-up cluster, and adds a fresh admin token.
func adminToken(ctx context.Context, storeDir, member, clusterID string) (string, error) {
	ca, err := freeAddr()
	if err != nil {
		return "", err
	}
	pa, err := freeAddr()
	if err != nil {
		return "", err
	}
	st, err := store.StartEmbedded(store.EmbeddedConfig{Dir: storeDir, Name: member, ClientAddr: ca, PeerAddr: pa})
	if err != nil {
		return "", fmt.Errorf("open restored store: %w", err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rec store.ClusterRecord
	if _, err := store.GetJSON(ctx, st, store.ClusterKey, &rec); err != nil {
		return "", fmt.Errorf("restored store: cluster record: %w", err)
	}
	if rec.ID != clusterID {
		return "", fmt.Errorf("%w: the snapshot is of cluster %s, meta.json says %s", ErrInvalid, rec.ID, clusterID)
	}
	token := "ruche_" + randomHex(24)
	tr := store.TokenRecord{Name: "admin (restored)", Role: "admin", Created: time.Now().UTC()}
	if _, err := st.Txn(ctx, nil, store.Put(store.TokenKey(hashToken(token)), store.Encode(tr))); err != nil {
		return "", fmt.Errorf("restored store: admin token: %w", err)
	}
	return token, nil
}

// moveInto moves every entry of src into dst (created if absent).
func moveInto(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("restore: move %s into place: %w", e.Name(), err)
		}
	}
	return nil
}

// hashToken is how the API stores tokens (apiserver.HashToken).
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func apiURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "https://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}
