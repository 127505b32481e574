package agent

import (
	"context"
	"time"

	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/store"
)

// cleanWork is what Run's loop hands the cleaner.
type cleanWork struct {
	// ready are the cleanup records whose project has no task assigned
	// here and no supervisor still tearing one down.
	ready []store.CleanupRecord
	// busy are the projects with a task or a supervisor here, or a
	// cleanup record: the sweep leaves their networks alone. nil until
	// the first task set arrived (nothing can be told unused before).
	busy map[string]bool
}

// checkCleanups hands the cleaner its work. Run's loop calls it; the
// cleaner does the engine work.
func (a *Agent) checkCleanups() {
	busy := map[string]bool{}
	for _, t := range a.tasks {
		busy[t.Project] = true
	}
	for _, s := range a.sups {
		busy[s.project()] = true
	}
	var w cleanWork
	for _, r := range a.cleanups {
		if !busy[r.Project] {
			w.ready = append(w.ready, r)
		}
	}
	if a.synced {
		for _, r := range a.cleanups {
			busy[r.Project] = true
		}
		w.busy = busy
	}
	select { // replace what the cleaner has not taken yet
	case <-a.cleanCh:
	default:
	}
	a.cleanCh <- w
}

// cleaner removes what removed projects left on the node: networks always,
// named volumes only when the record asks, once no container of the
// project is left. Then it tells the managers.
func (a *Agent) cleaner(ctx context.Context) {
	done := map[string]time.Time{} // project -> Created of the record handled
	var pending []store.CleanupRecord
	bo := backoff{min: time.Second, max: 30 * time.Second}
	var retry <-chan time.Time
	var swept time.Time
	for {
		select {
		case w := <-a.cleanCh:
			pending = w.ready
			if w.busy != nil && time.Since(swept) >= a.sweepEvery() {
				swept = time.Now()
				a.sweepNetworks(ctx, w.busy)
			}
		case <-retry:
		case <-ctx.Done():
			return
		}
		retry = nil
		failed := false
		for _, r := range pending {
			if t, ok := done[r.Project]; ok && t.Equal(r.Created) {
				continue
			}
			ok, err := a.cleanProject(ctx, r)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("project cleanup failed; retrying", "project", r.Project, "err", err)
				failed = true
				continue
			}
			if ok {
				done[r.Project] = r.Created
			}
		}
		if failed {
			retry = time.After(bo.next())
		} else {
			bo.reset()
		}
	}
}

// cleanProject reports false, nil when containers of the project remain
// (their removal will call for another check).
func (a *Agent) cleanProject(ctx context.Context, r store.CleanupRecord) (bool, error) {
	labels := a.nodeLabels()
	labels[runtime.LabelProject] = r.Project
	cs, err := a.rt.ListSummaries(ctx, labels)
	if err != nil {
		return false, err
	}
	if len(cs) > 0 {
		return false, nil
	}
	if a.pn != nil {
		if err := a.removePrivnets(r.Project, nil); err != nil {
			return false, err
		}
	}
	nets, err := a.rt.Networks(ctx, projectLabels(r.Project))
	if err != nil {
		return false, err
	}
	for _, n := range nets {
		if err := a.rt.RemoveNetwork(ctx, n.Name); err != nil {
			return false, err
		}
	}
	if r.Volumes {
		vols, err := a.rt.Volumes(ctx, projectLabels(r.Project))
		if err != nil {
			return false, err
		}
		for _, v := range vols {
			if err := a.rt.RemoveVolume(ctx, v); err != nil {
				return false, err
			}
		}
	}
	if err := a.conn.CleanupDone(ctx, r.Project, a.cfg.NodeID); err != nil {
		return false, err
	}
	a.log.Info("project cleaned up", "project", r.Project, "volumes", r.Volumes)
	return true, nil
}
