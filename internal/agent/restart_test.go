package agent

import (
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
)

func TestDecideExit(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name         string
		policy       client.RestartPolicy
		code         int
		ranFor       time.Duration
		failures     int
		wantRestart  bool
		wantDelay    time.Duration
		wantFailures int
		wantState    string
		wantMessage  string
	}{
		{"default restarts after 1s", client.RestartPolicy{}, 1, 0, 0, true, s, 1, client.StateRestarting, "exited with code 1; restarting in 1s"},
		{"delay doubles", client.RestartPolicy{}, 1, 0, 2, true, 4 * s, 3, client.StateRestarting, "exited with code 1; restarting in 4s"},
		{"delay capped at a minute", client.RestartPolicy{}, 1, 0, 20, true, time.Minute, 21, client.StateRestarting, "exited with code 1; restarting in 1m0s"},
		{"long run resets the count", client.RestartPolicy{}, 1, 10 * s, 5, true, s, 1, client.StateRestarting, "exited with code 1; restarting in 1s"},
		{"custom window", client.RestartPolicy{Window: client.Duration(time.Minute)}, 1, 30 * s, 2, true, 4 * s, 3, client.StateRestarting, "exited with code 1; restarting in 4s"},
		{"custom delay", client.RestartPolicy{Delay: client.Duration(3 * s)}, 1, 0, 1, true, 6 * s, 2, client.StateRestarting, "exited with code 1; restarting in 6s"},
		{"any restarts a clean exit", client.RestartPolicy{Condition: client.RestartAny}, 0, 0, 0, true, s, 1, client.StateRestarting, "exited with code 0; restarting in 1s"},
		{"on-failure, clean exit completes", client.RestartPolicy{Condition: client.RestartOnFailure}, 0, 0, 0, false, 0, 0, client.StateComplete, "exited with code 0"},
		{"on-failure, failure restarts", client.RestartPolicy{Condition: client.RestartOnFailure}, 2, 0, 0, true, s, 1, client.StateRestarting, "exited with code 2; restarting in 1s"},
		{"none, failure fails", client.RestartPolicy{Condition: client.RestartNone}, 2, 0, 0, false, 0, 0, client.StateFailed, "exited with code 2"},
		{"max attempts reached", client.RestartPolicy{MaxAttempts: 2}, 1, 0, 2, false, 0, 3, client.StateFailed, "exited with code 1; gave up after 2 restarts"},
		{"max attempts, clean exit completes", client.RestartPolicy{MaxAttempts: 1}, 0, 0, 1, false, 0, 2, client.StateComplete, "exited with code 0; gave up after 1 restarts"},
		{"max attempts not reached", client.RestartPolicy{MaxAttempts: 2}, 1, 0, 1, true, 2 * s, 2, client.StateRestarting, "exited with code 1; restarting in 2s"},
		{"window resets max attempts", client.RestartPolicy{MaxAttempts: 2}, 1, 20 * s, 2, true, s, 1, client.StateRestarting, "exited with code 1; restarting in 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideExit(tt.policy, tt.code, tt.ranFor, tt.failures, false)
			if got.restart != tt.wantRestart || got.delay != tt.wantDelay || got.failures != tt.wantFailures ||
				got.state != tt.wantState || got.message != tt.wantMessage {
				t.Errorf("got %+v, want restart %v delay %s failures %d state %s message %q",
					got, tt.wantRestart, tt.wantDelay, tt.wantFailures, tt.wantState, tt.wantMessage)
			}
		})
	}
}

func TestDecideExitOOM(t *testing.T) {
	got := decideExit(client.RestartPolicy{Condition: client.RestartNone}, 137, 0, 0, true)
	if want := "exited with code 137 (out of memory)"; got.message != want {
		t.Errorf("got %q, want %q", got.message, want)
	}
}
