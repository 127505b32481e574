package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/store"
)

// isTaskID reports whether id can name a task's directory: one path
// element, not "." or "..". Task IDs from the managers are made of
// validated names; a container's task label is whatever the engine holds.
func isTaskID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\\\x00")
}

// taskDir holds a task's files: <DataDir>/run/<task-id>.
func (a *Agent) taskDir(taskID string) string {
	return filepath.Join(a.cfg.DataDir, "run", taskID)
}

// writeFiles writes a task's secrets and configs under its directory and
// returns their read-only bind mounts. Files are rewritten on every
// creation, so a container always gets the content of its task.
func (a *Agent) writeFiles(ctx context.Context, t store.TaskRecord) ([]runtime.Mount, error) {
	var mounts []runtime.Mount
	kinds := []struct {
		dir    string
		refs   []client.FileRef
		secret bool
		get    func(context.Context, string, string) ([]byte, error)
	}{
		{"secrets", t.Spec.Secrets, true, a.conn.Secret},
		{"configs", t.Spec.Configs, false, a.conn.Config},
	}
	for _, k := range kinds {
		if len(k.refs) == 0 {
			continue
		}
		dir := filepath.Join(a.taskDir(t.ID), k.dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("task files: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("task files: %w", err)
		}
		for i, ref := range k.refs {
			data, err := k.get(ctx, t.Project, ref.Source)
			if err != nil {
				return nil, err
			}
			// The index keeps two mounts of one source with different
			// modes apart.
			p := filepath.Join(dir, strconv.Itoa(i)+"-"+ref.Source)
			if err := writeFileRef(p, data, ref); err != nil {
				return nil, fmt.Errorf("write %s %s: %w", k.dir[:len(k.dir)-1], ref.Source, err)
			}
			mounts = append(mounts, runtime.Mount{Type: client.MountBind, Source: p, Target: fileTarget(ref, k.secret), ReadOnly: true})
		}
	}
	return mounts, nil
}

func writeFileRef(p string, data []byte, ref client.FileRef) error {
	mode := os.FileMode(0o444)
	if ref.Mode != 0 {
		mode = os.FileMode(ref.Mode) & os.ModePerm
	}
	tmp := p + ".tmp"
	_ = os.Remove(tmp)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if ref.UID != "" || ref.GID != "" {
		uid, gid := -1, -1
		var err error
		if ref.UID != "" {
			if uid, err = strconv.Atoi(ref.UID); err != nil {
				return fmt.Errorf("uid %q: %w", ref.UID, err)
			}
		}
		if ref.GID != "" {
			if gid, err = strconv.Atoi(ref.GID); err != nil {
				return fmt.Errorf("gid %q: %w", ref.GID, err)
			}
		}
		if err := os.Chown(tmp, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// removeFiles deletes a task's directory.
func (a *Agent) removeFiles(taskID string) error {
	if err := os.RemoveAll(a.taskDir(taskID)); err != nil {
		return fmt.Errorf("remove task files: %w", err)
	}
	return nil
}

// removeStaleFiles deletes the directories of tasks that have no
// supervisor: a task deleted while the agent was down, whose container
// was already gone (it failed before its container was made, or the agent
// stopped between removing the container and its files), has no container
// for the orphan scan to find, and its secrets would stay on disk for
// good. Run's loop calls it after an orphan scan, when every task with a
// container here has a supervisor; only supervisors write in these
// directories.
func (a *Agent) removeStaleFiles() {
	entries, err := os.ReadDir(filepath.Join(a.cfg.DataDir, "run"))
	if err != nil {
		if !os.IsNotExist(err) {
			a.log.Warn("task files: listing failed", "err", err)
		}
		return
	}
	for _, e := range entries {
		if _, ok := a.sups[e.Name()]; ok || !e.IsDir() {
			continue
		}
		if err := a.removeFiles(e.Name()); err != nil {
			a.log.Warn("task files of a task gone", "task", e.Name(), "err", err)
			continue
		}
		a.log.Info("removed the files of a task no longer assigned", "task", e.Name())
	}
}
