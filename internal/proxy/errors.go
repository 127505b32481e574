package proxy

import "errors"

// Sentinel errors.
var (
	// ErrDrainTimeout: Drain gave up (DrainTimeout passed) while the
	// upstream was still in the table or still had requests in flight.
	ErrDrainTimeout = errors.New("proxy: drain timed out")
	// ErrRunning: Run was called a second time.
	ErrRunning = errors.New("proxy: already running")

	// Upstream failures, as seen by one attempt. They classify what went
	// wrong for retries, ejection and metrics; they never reach callers.
	errDial          = errors.New("proxy: upstream dial")
	errResetBefore   = errors.New("proxy: upstream closed before response headers")
	errHeaderTimeout = errors.New("proxy: upstream response header timeout")
	errProtocol      = errors.New("proxy: malformed upstream response")
	errBodyTooLarge  = errors.New("proxy: request body too large")
	errBodyStalled   = errors.New("proxy: request body stalled")
)
