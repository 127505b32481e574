package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ruche-platform/ruche/internal/agent"
)

// keepManagerList saves in agent.json the managers the agent learnt from
// heartbeat answers (managers added after it joined), so a restart while
// the manager it joined through is down still finds the others. It checks
// every 30 s until ctx ends.
func keepManagerList(ctx context.Context, dir string, id Identity, conn *agent.RemoteConn, log *slog.Logger) error {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		ms := conn.Managers()
		if slices.Equal(ms, id.Managers) {
			continue
		}
		id.Managers = ms
		if err := writeIdentity(dir, &id); err != nil {
			log.Warn("manager list not saved", "err", err)
			continue
		}
		log.Info("manager list saved", "managers", ms)
	}
}

// writeIdentity rewrites agent.json only (the certificates stay).
func writeIdentity(dir string, id *Identity) error {
	b, _ := json.MarshalIndent(id, "", "  ")
	path := filepath.Join(dir, identityFile)
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
