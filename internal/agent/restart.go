package agent

import (
	"fmt"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// Restart policy defaults (see client.RestartPolicy).
const (
	defaultRestartDelay  = time.Second
	defaultRestartWindow = 10 * time.Second
	maxRestartDelay      = time.Minute
	defaultStopGrace     = 10 * time.Second
)

// exitDecision is what the restart policy says about one exit.
type exitDecision struct {
	restart  bool
	delay    time.Duration
	failures int    // consecutive failures after this exit
	state    string // client.StateRestarting, StateFailed or StateComplete
	message  string
}

// decideExit applies policy to an exit with code after the replica ran for
// ranFor, failures being the consecutive failures before it. A run longer
// than the window resets the count; each consecutive failure doubles the
// delay, up to a minute (or the policy's delay if longer); MaxAttempts > 0
// bounds the consecutive restarts.
func decideExit(p client.RestartPolicy, code int, ranFor time.Duration, failures int, oom bool) exitDecision {
	window := p.Window.D()
	if window <= 0 {
		window = defaultRestartWindow
	}
	if ranFor >= window {
		failures = 0
	}
	what := fmt.Sprintf("exited with code %d", code)
	if oom {
		what += " (out of memory)"
	}
	stop := func(reason string) exitDecision {
		d := exitDecision{failures: failures, state: client.StateFailed, message: what}
		if code == 0 {
			d.state = client.StateComplete
		}
		if reason != "" {
			d.message += "; " + reason
		}
		return d
	}
	switch p.Condition {
	case client.RestartNone:
		return stop("")
	case client.RestartOnFailure:
		if code == 0 {
			return stop("")
		}
	}
	failures++
	if p.MaxAttempts > 0 && failures > p.MaxAttempts {
		return stop(fmt.Sprintf("gave up after %d restarts", p.MaxAttempts))
	}
	delay := restartDelay(p.Delay.D(), failures)
	return exitDecision{
		restart:  true,
		delay:    delay,
		failures: failures,
		state:    client.StateRestarting,
		message:  fmt.Sprintf("%s; restarting in %s", what, delay),
	}
}

// restartDelay is base doubled for each failure after the first, capped.
func restartDelay(base time.Duration, failures int) time.Duration {
	if base <= 0 {
		base = defaultRestartDelay
	}
	limit := max(maxRestartDelay, base)
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
