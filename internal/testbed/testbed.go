// Package testbed runs N nodes on one machine for multi-node tests: each
// node is a network namespace with its own dockerd, joined by a veth pair
// to a bridge that stands for the network between machines, plus faults
// (kill a node, cut its link, partition, delay). Everything it creates is
// named with the prefix "ruche-tb-" and removed by Close, or by the next
// Start after a crash. It needs root. See README.md.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Prefix names everything the testbed creates: namespaces, links, the
// bridge, iptables comments, cgroups, directories.
const Prefix = "ruche-tb-"

// Directories of the runs: state, sockets and logs under RunDir, the
// daemons' data under DataDir, one subdirectory per run.
var (
	RunDir  = "/run/ruche-tb"
	DataDir = "/var/lib/ruche-tb"
)

// Errors.
var (
	ErrUnsupported = errors.New("testbed: not supported on this machine")
	ErrNoRange     = errors.New("testbed: no free address range")
	ErrNoNode      = errors.New("testbed: no such node")
	ErrNotRoot     = errors.New("testbed: needs root")
	ErrStarted     = errors.New("testbed: already started")
)

// Image is a test image built into every node's daemon: a main package
// compiled static into a FROM scratch image (see internal/testimage).
type Image struct {
	Ref     string // the tag, e.g. "ruche-e2e-hello:latest"
	Package string // an import path or a path relative to the working directory
}

// Config describes a testbed.
type Config struct {
	// Nodes is the number of nodes (1..MaxNodes, default 3).
	Nodes int
	// HostAddress gives the host an address on the bridge (the .1 of the
	// link network), so this process can reach the nodes directly (the CLI
	// against a manager, HTTP against an ingress). Without it the host has
	// no address in the testbed at all.
	HostAddress bool
	// Docker starts a dockerd in every node (default false: namespaces only).
	Docker bool
	// Images are built into every node's daemon once it answers.
	Images []Image
	// DockerTimeout bounds the wait for a dockerd to answer (default 60s).
	DockerTimeout time.Duration
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// Testbed is one run: a bridge, its nodes, and what they started.
type Testbed struct {
	cfg  Config
	log  *slog.Logger
	run  string // 4 hex digits, in every name of this run
	plan plan

	mu      sync.Mutex
	nodes   []*Node
	started bool
	closed  bool
}

// New checks cfg; it does no I/O.
func New(cfg Config) (*Testbed, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("testbed: %d nodes: want 1 to %d", cfg.Nodes, MaxNodes)
	}
	if cfg.DockerTimeout == 0 {
		cfg.DockerTimeout = 60 * time.Second
	}
	if len(cfg.Images) > 0 && !cfg.Docker {
		return nil, errors.New("testbed: images need Docker")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Testbed{cfg: cfg, log: log.With("component", "testbed")}, nil
}

// Run is this run's identifier (4 hex digits).
func (tb *Testbed) Run() string { return tb.run }

// Bridge is the name of the bridge between the nodes.
func (tb *Testbed) Bridge() string { return bridgeName(tb.run) }

// LinkNet is the network the nodes' addresses come from.
func (tb *Testbed) LinkNet() netip.Prefix { return tb.plan.LinkNet() }

// HostAddr is the host's address on the bridge; invalid without
// Config.HostAddress.
func (tb *Testbed) HostAddr() netip.Addr {
	if !tb.cfg.HostAddress {
		return netip.Addr{}
	}
	return tb.plan.HostAddr()
}

// Nodes lists the nodes, node1 first.
func (tb *Testbed) Nodes() []*Node {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]*Node(nil), tb.nodes...)
}

// Node returns the node named name ("node1"...), or nil.
func (tb *Testbed) Node(name string) *Node {
	for _, n := range tb.Nodes() {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (tb *Testbed) node(name string) (*Node, error) {
	if n := tb.Node(name); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNoNode, name)
}

// Start removes the leftovers of dead runs, picks an address block, then
// creates the bridge, the nodes' namespaces and links, and (with Docker)
// their daemons and images. On error what was created is removed.
func (tb *Testbed) Start(ctx context.Context) error {
	tb.mu.Lock()
	if tb.started {
		tb.mu.Unlock()
		return ErrStarted
	}
	tb.started = true
	tb.mu.Unlock()
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	if err := tb.claim(ctx); err != nil {
		return err
	}
	if err := tb.start(ctx); err != nil {
		if cerr := tb.Close(); cerr != nil {
			tb.log.Warn("cleanup after a failed start", "err", cerr)
		}
		return err
	}
	return nil
}

func (tb *Testbed) start(ctx context.Context) error {
	if err := tb.createBridge(ctx); err != nil {
		return err
	}
	for i := 1; i <= tb.cfg.Nodes; i++ {
		n := tb.newNode(i)
		tb.mu.Lock()
		tb.nodes = append(tb.nodes, n)
		tb.mu.Unlock()
		if err := tb.createNode(ctx, n); err != nil {
			return err
		}
	}
	if !tb.cfg.Docker {
		return nil
	}
	// The daemons start in parallel: each takes a few seconds.
	errs := make(chan error, len(tb.nodes))
	for _, n := range tb.Nodes() {
		go func() { errs <- n.StartDocker(ctx) }()
	}
	var err error
	for range tb.Nodes() {
		err = errors.Join(err, <-errs)
	}
	return err
}

// runDir is this run's directory under RunDir.
func (tb *Testbed) runDir() string { return filepath.Join(RunDir, tb.run) }

func (tb *Testbed) dataDir() string { return filepath.Join(DataDir, tb.run) }

// Close stops every process the testbed started (agents, then daemons),
// and removes the nodes, links, bridge, rules, cgroups, mounts and
// directories of this run. It is safe to call more than once.
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	if tb.closed || tb.run == "" {
		tb.closed = true
		tb.mu.Unlock()
		return nil
	}
	tb.closed = true
	nodes := append([]*Node(nil), tb.nodes...)
	tb.mu.Unlock()
	for _, n := range nodes {
		n.stopProcs(10 * time.Second)
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.stopDocker(20 * time.Second) }()
	}
	wg.Wait()
	err := removeRun(tb.run, tb.log)
	os.Remove(DataDir) // when no other run uses it; RunDir keeps the lock file
	return err
}
