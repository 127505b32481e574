package apiserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/ruche-platform/ruche/internal/store"
	"github.com/ruche-platform/ruche/internal/store/backup"
)

// BackupWriter writes a backup archive of the cluster: a consistent store
// snapshot with the cluster CA and the secret key (backup.Source).
type BackupWriter interface {
	WriteBackup(ctx context.Context, w io.Writer) (backup.Meta, error)
}

// getBackup is GET /v1/backup (admin tokens only): the backup archive as a
// gzip'd tar. The snapshot is staged and hashed before the first byte is
// sent, so a failure to take it comes back as a JSON error; a failure while
// streaming leaves a truncated archive, which `ruche backup create`
// rejects when it verifies the file.
func (s *Server) getBackup(w http.ResponseWriter, r *http.Request) error {
	if s.d.Backup == nil {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", msg: "backups are not available on this manager"}
	}
	if err := s.requireAdmin(r, "a backup holds the cluster's keys: it needs an admin token"); err != nil {
		return err
	}
	lw := &lazyHeader{w: w}
	meta, err := s.d.Backup.WriteBackup(r.Context(), lw)
	if err != nil {
		if !lw.started {
			return err
		}
		s.log.Error("backup interrupted while streaming", "err", err)
		return nil
	}
	s.log.Info("backup taken", "revision", meta.Revision, "keys", meta.Keys, "snapshot_bytes", meta.SnapshotSize)
	return nil
}

// requireAdmin refuses tokens whose role is not admin, saying why.
func (s *Server) requireAdmin(r *http.Request, why string) error {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var rec store.TokenRecord
	if _, err := store.GetJSON(r.Context(), s.d.Store, store.TokenKey(HashToken(tok)), &rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "invalid token"}
		}
		return err
	}
	if rec.Role != "admin" {
		return &apiError{status: http.StatusForbidden, code: "forbidden", msg: why}
	}
	return nil
}

// lazyHeader sends the archive's headers with its first byte.
type lazyHeader struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyHeader) Write(b []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "application/gzip")
		l.w.Header().Set("Content-Disposition", `attachment; filename="ruche-backup.tar.gz"`)
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(b)
}
