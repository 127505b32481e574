package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// taskState is what a supervisor must not forget across agent restarts:
// the restart policy's counters as of the container's latest start, and
// whether the policy gave up. The container itself is found again by its
// labels; this file (<DataDir>/run/<task>/state.json) keeps the rest, so a
// restarted agent neither resets the backoff nor revives a replica the
// policy stopped.
type taskState struct {
	Restarts int  `json:"restarts"`
	Failures int  `json:"failures"`
	Terminal bool `json:"terminal,omitempty"`
}

func (a *Agent) statePath(taskID string) string {
	return filepath.Join(a.taskDir(taskID), "state.json")
}

func (a *Agent) loadState(taskID string) (taskState, bool) {
	var st taskState
	b, err := os.ReadFile(a.statePath(taskID))
	if err != nil || json.Unmarshal(b, &st) != nil {
		return taskState{}, false
	}
	return st, true
}

func (a *Agent) saveState(taskID string, st taskState) error {
	p := a.statePath(taskID)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("save task state: %w", err)
	}
	b, _ := json.Marshal(st)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save task state: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("save task state: %w", err)
	}
	return nil
}
