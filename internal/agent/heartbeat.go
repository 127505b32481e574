package agent

import (
	"context"
	"time"
)

// defaultHeartbeat is the interval until the managers say otherwise (the
// answer of Conn.Heartbeat).
const defaultHeartbeat = time.Second

// heartbeat tells the managers the node is alive, with its live load,
// every interval, until ctx ends. The interval is the managers' answer to
// the previous beat. Failures are logged once per change of outcome: a
// manager out of reach for a minute is one warning, not sixty.
func (a *Agent) heartbeat(ctx context.Context) {
	interval := a.cfg.HeartbeatInterval
	if interval <= 0 {
		interval = defaultHeartbeat
	}
	sampler := newLoadSampler(a.cfg.ProcDir)
	var sampleErr, beatErr bool
	for {
		load, err := sampler.sample(time.Now())
		if err != nil && !sampleErr {
			a.log.Warn("cannot read the node's load", "err", err)
		}
		sampleErr = err != nil
		d, err := a.conn.Heartbeat(ctx, a.cfg.NodeID, load)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !beatErr:
			a.log.Warn("heartbeat failed", "err", err)
		case err == nil && beatErr:
			a.log.Info("heartbeats go through again")
		}
		beatErr = err != nil
		if d > 0 {
			interval = d
		}
		if !sleep(ctx, interval) {
			return
		}
	}
}
