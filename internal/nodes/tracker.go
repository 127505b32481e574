// Package nodes is node health and node records: the Tracker keeps the
// heartbeats of agents in memory, the Monitor (leader only) turns them into
// node status changes in the store, and Register/SetLabels are the merge
// rules of node records. See README.md.
package nodes

import (
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// Defaults of Config.
const (
	DefaultInterval  = time.Second
	DefaultDownAfter = 5 * time.Second
)

// Config is the heartbeat timing.
type Config struct {
	// Interval is how often agents beat (handed to them as Beat's answer).
	// Default 1s.
	Interval time.Duration
	// DownAfter is how long a node may stay silent before it is marked
	// down. Default 5s.
	DownAfter time.Duration
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.DownAfter <= 0 {
		c.DownAfter = DefaultDownAfter
	}
	return c
}

// beat is the last heartbeat of a node.
type beat struct {
	at   time.Time // on this process's clock
	load client.NodeLoad
}

// Tracker keeps the last heartbeat and live load of every node, in memory.
// It implements agent.HeartbeatSink (structurally: this package does not
// import agent). Safe for concurrent use.
type Tracker struct {
	cfg Config

	mu    sync.Mutex
	beats map[string]beat
	// revived is signalled when a node beats after a silence of DownAfter
	// or more (or for the first time): the Monitor marks it ready at once
	// instead of at its next tick.
	revived chan struct{}
}

// NewTracker returns an empty Tracker.
func NewTracker(cfg Config) *Tracker {
	return &Tracker{cfg: cfg.withDefaults(), beats: map[string]beat{}, revived: make(chan struct{}, 1)}
}

// Config returns the tracker's timing, defaults applied.
func (t *Tracker) Config() Config { return t.cfg }

// Beat records a heartbeat of node with its load, and returns the interval
// agents should beat at.
func (t *Tracker) Beat(node string, load client.NodeLoad) time.Duration {
	now := time.Now()
	t.mu.Lock()
	prev, ok := t.beats[node]
	t.beats[node] = beat{at: now, load: load}
	t.mu.Unlock()
	if !ok || now.Sub(prev.at) >= t.cfg.DownAfter {
		select {
		case t.revived <- struct{}{}:
		default:
		}
	}
	return t.cfg.Interval
}

// LastBeat is when node last beat (this process's clock).
func (t *Tracker) LastBeat(node string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.beats[node]
	return b.at, ok
}

// Load is node's live load as of its last heartbeat. ok is false when the
// node never beat here, or not within DownAfter (a stale load would
// mislead the scheduler).
func (t *Tracker) Load(node string) (client.NodeLoad, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.beats[node]
	if !ok || time.Since(b.at) >= t.cfg.DownAfter {
		return client.NodeLoad{}, false
	}
	return b.load, true
}

// Forget drops what the tracker knows of node (a removed node).
func (t *Tracker) Forget(node string) {
	t.mu.Lock()
	delete(t.beats, node)
	t.mu.Unlock()
}
