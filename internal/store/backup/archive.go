// Package backup makes and restores ruche backups: a consistent etcd
// snapshot of the store together with what a new manager needs to use it
// (the cluster CA and the secret box key). See README.md for the format.
package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/ruche-platform/ruche/internal/store"
)

// Format names the archive layout written in meta.json.
const Format = "ruche-backup/1"

// Names of the archive's entries, in the order they are written.
const (
	MetaEntry      = "meta.json"
	SnapshotEntry  = "snapshot.db"
	CACertEntry    = "ca.crt"
	CAKeyEntry     = "ca.key"
	SecretKeyEntry = "secret.key"
)

// Sentinel errors.
var (
	// ErrInvalid is a file that is not a complete, intact ruche backup.
	ErrInvalid = errors.New("not a valid ruche backup")
	// ErrDataDirInUse is a restore target that already holds a manager's
	// files (its store, keys, certificates or admin.conf).
	ErrDataDirInUse = errors.New("data dir already holds a manager's files")
)

// Meta is meta.json: what the backup holds and how to check it.
type Meta struct {
	Format       string    `json:"format"`
	ClusterID    string    `json:"cluster_id"`
	Created      time.Time `json:"created"`
	RucheVersion string    `json:"ruche_version,omitempty"`
	// Revision is the store revision of the snapshot, Keys the number of
	// live keys in it.
	Revision int64 `json:"revision"`
	Keys     int   `json:"keys"`
	// SnapshotSize and SnapshotSHA256 cover snapshot.db exactly as stored
	// (etcd's own sha256 of the database is appended to it as well).
	SnapshotSize   int64  `json:"snapshot_size"`
	SnapshotSHA256 string `json:"snapshot_sha256"`
	// EtcdStorageVersion is the etcd storage version of the snapshot.
	EtcdStorageVersion string `json:"etcd_storage_version,omitempty"`
}

// Snapshotter is the part of the store a backup needs.
type Snapshotter interface {
	Snapshot(ctx context.Context, w io.Writer) (store.SnapshotInfo, error)
}

// Source writes backups of a running manager.
type Source struct {
	Store     Snapshotter
	ClusterID string
	// Files of the manager's data directory that go into the backup.
	CACertFile, CAKeyFile, SecretKeyFile string
	// TempDir holds the snapshot while it is hashed (default: the OS's).
	TempDir string
	Version string
}

// WriteBackup streams a backup archive to w. The snapshot is staged in a
// temporary file first: the archive's entries need their sizes up front
// and meta.json its hash.
func (s *Source) WriteBackup(ctx context.Context, w io.Writer) (Meta, error) {
	files := map[string][]byte{}
	for name, path := range map[string]string{CACertEntry: s.CACertFile, CAKeyEntry: s.CAKeyFile, SecretKeyEntry: s.SecretKeyFile} {
		b, err := os.ReadFile(path)
		if err != nil {
			return Meta{}, fmt.Errorf("backup %s: %w", name, err)
		}
		files[name] = b
	}
	tmp, err := os.CreateTemp(s.TempDir, "ruche-snapshot-*.db")
	if err != nil {
		return Meta{}, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	info, err := s.Store.Snapshot(ctx, io.MultiWriter(tmp, h))
	if err != nil {
		return Meta{}, err
	}
	if err := tmp.Sync(); err != nil {
		return Meta{}, fmt.Errorf("backup: %w", err)
	}
	st, err := snapshot.NewV3(zap.NewNop()).Status(tmp.Name())
	if err != nil {
		return Meta{}, fmt.Errorf("backup: check snapshot: %w", err)
	}
	meta := Meta{
		Format: Format, ClusterID: s.ClusterID, Created: time.Now().UTC(), RucheVersion: s.Version,
		Revision: st.Revision, Keys: st.TotalKey, SnapshotSize: info.Size,
		SnapshotSHA256: hex.EncodeToString(h.Sum(nil)), EtcdStorageVersion: st.Version,
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Meta{}, fmt.Errorf("backup: %w", err)
	}

	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	add := func(name string, size int64, r io.Reader) error {
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: meta.Created, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	mb, _ := json.MarshalIndent(meta, "", "  ")
	mb = append(mb, '\n')
	err = add(MetaEntry, int64(len(mb)), bytes.NewReader(mb))
	if err == nil {
		err = add(SnapshotEntry, info.Size, tmp)
	}
	for _, name := range []string{CACertEntry, CAKeyEntry, SecretKeyEntry} {
		if err == nil {
			err = add(name, int64(len(files[name])), bytes.NewReader(files[name]))
		}
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err != nil {
		return Meta{}, fmt.Errorf("write backup: %w", err)
	}
	return meta, nil
}

// Archive is a read and verified backup.
type Archive struct {
	Meta Meta
	// SnapshotPath is where snapshot.db was extracted ("" when only
	// verified).
	SnapshotPath                string
	CACert, CAKey, SecretKeyRaw []byte
}

// Read reads a backup archive from r and verifies it in full: format,
// every entry present once, snapshot size and sha256, CA certificate and
// key matching, secret key length. With dir set, snapshot.db is written
// there; with dir "" it is only hashed.
func Read(r io.Reader, dir string) (*Archive, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not gzip (%v)", ErrInvalid, err)
	}
	tr := tar.NewReader(gz)
	a := &Archive{}
	seen := map[string]bool{}
	var sum hash.Hash
	var snapSize int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if seen[hdr.Name] {
			return nil, fmt.Errorf("%w: %s appears twice", ErrInvalid, hdr.Name)
		}
		seen[hdr.Name] = true
		switch hdr.Name {
		case MetaEntry:
			b, err := readSmall(tr, hdr.Name)
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, &a.Meta); err != nil {
				return nil, fmt.Errorf("%w: meta.json: %v", ErrInvalid, err)
			}
			if a.Meta.Format != Format {
				return nil, fmt.Errorf("%w: format %q, this ruche reads %q", ErrInvalid, a.Meta.Format, Format)
			}
		case SnapshotEntry:
			if !seen[MetaEntry] {
				return nil, fmt.Errorf("%w: snapshot.db before meta.json", ErrInvalid)
			}
			sum = sha256.New()
			var out io.Writer = sum
			var f *os.File
			if dir != "" {
				a.SnapshotPath = filepath.Join(dir, SnapshotEntry)
				if f, err = os.OpenFile(a.SnapshotPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
					return nil, fmt.Errorf("extract snapshot: %w", err)
				}
				out = io.MultiWriter(f, sum)
			}
			snapSize, err = io.Copy(out, tr)
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return nil, fmt.Errorf("%w: snapshot.db: %v", ErrInvalid, err)
			}
		case CACertEntry, CAKeyEntry, SecretKeyEntry:
			b, err := readSmall(tr, hdr.Name)
			if err != nil {
				return nil, err
			}
			switch hdr.Name {
			case CACertEntry:
				a.CACert = b
			case CAKeyEntry:
				a.CAKey = b
			default:
				a.SecretKeyRaw = b
			}
		default:
			return nil, fmt.Errorf("%w: unexpected entry %q", ErrInvalid, hdr.Name)
		}
	}
	for _, name := range []string{MetaEntry, SnapshotEntry, CACertEntry, CAKeyEntry, SecretKeyEntry} {
		if !seen[name] {
			return nil, fmt.Errorf("%w: %s is missing", ErrInvalid, name)
		}
	}
	if got := hex.EncodeToString(sum.Sum(nil)); snapSize != a.Meta.SnapshotSize || got != a.Meta.SnapshotSHA256 {
		return nil, fmt.Errorf("%w: snapshot.db is damaged (%d bytes with sha256 %s, meta.json says %d bytes with sha256 %s)",
			ErrInvalid, snapSize, got, a.Meta.SnapshotSize, a.Meta.SnapshotSHA256)
	}
	if _, err := tls.X509KeyPair(a.CACert, a.CAKey); err != nil {
		return nil, fmt.Errorf("%w: ca.crt and ca.key: %v", ErrInvalid, err)
	}
	if len(a.SecretKeyRaw) != 32 {
		return nil, fmt.Errorf("%w: secret.key is %d bytes, want 32", ErrInvalid, len(a.SecretKeyRaw))
	}
	if a.Meta.ClusterID == "" {
		return nil, fmt.Errorf("%w: meta.json has no cluster id", ErrInvalid)
	}
	return a, nil
}

// VerifyFile reads and verifies the backup at path without extracting it.
func VerifyFile(path string) (Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, err
	}
	defer f.Close()
	a, err := Read(f, "")
	if err != nil {
		return Meta{}, err
	}
	return a.Meta, nil
}

func readSmall(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%w: %s is larger than 1 MiB", ErrInvalid, name)
	}
	return b, nil
}
