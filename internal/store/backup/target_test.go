package backup_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ruche-platform/ruche/internal/store/backup"
	"github.com/ruche-platform/ruche/internal/testports"
)

// backupFile takes a backup of a new manager and returns its path.
func backupFile(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	src := startManager(t, filepath.Join(root, "old"), "admin")
	file := filepath.Join(root, "backup.tar.gz")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := src.cli.Backup(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestRestoreRefusesWhatItWouldReplace: a data dir holding any file or
// directory the restore writes (admin.conf, pki/, secret.key, store/) is
// refused before anything is written; the files already there are left
// as they were.
func TestRestoreRefusesWhatItWouldReplace(t *testing.T) {
	file := backupFile(t)
	for _, name := range []string{"admin.conf", "pki/api.crt", "secret.key", "store/x"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
			in, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			_, err = backup.Restore(context.Background(), in, backup.RestoreConfig{DataDir: dir, PeerAddr: testports.Free(t)})
			if !errors.Is(err, backup.ErrDataDirInUse) {
				t.Fatalf("restore into a data dir holding %s: got %v, want ErrDataDirInUse", name, err)
			}
			var left []string
			filepath.WalkDir(filepath.Dir(dir), func(p string, d os.DirEntry, err error) error {
				if !d.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					left = append(left, rel)
				}
				return nil
			})
			if len(left) != 1 || left[0] != name {
				t.Errorf("files after the refused restore: %v, want only %s", left, name)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != "mine" {
				t.Errorf("%s was changed: %q", name, b)
			}
		})
	}
}

// TestRestoreIntoAMountPoint: a data dir that is a file system of its own
// (a disk mounted at /var/lib/ruche) is restored into. The restore stages
// its files in the data dir itself: staged next to it, on the parent's file
// system, they could not be renamed into place ("invalid cross-device
// link"). Mounting needs root.
func TestRestoreIntoAMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	file := backupFile(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// Lazily: etcd keeps its log file (store/etcd.log) open after
		// the restore's member is closed.
		if out, err := exec.Command("umount", "--lazy", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	in, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := backup.Restore(context.Background(), in, backup.RestoreConfig{DataDir: dir, PeerAddr: testports.Free(t)}); err != nil {
		t.Fatalf("restore into a mount point: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := "[admin.conf pki secret.key store]"; fmt.Sprint(names) != want {
		t.Errorf("data dir holds %v, want %s", names, want)
	}
	if left, _ := os.ReadDir(filepath.Dir(dir)); len(left) != 1 {
		t.Errorf("next to the data dir: %v, want nothing left", left)
	}
}
