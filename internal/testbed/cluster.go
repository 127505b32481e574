package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// APIPort is the port of the manager's API in node1.
const APIPort = "7443"

// ClusterConfig describes a ruche cluster on a testbed: `ruche up` in
// node1, `ruche agent --join` in the others.
type ClusterConfig struct {
	// Bin is the ruche binary.
	Bin string
	// Labels are each node's --label flags ("zone=a"), by node name.
	Labels map[string][]string
	// ManagerArgs are extra flags of `ruche up`; AgentArgs of `ruche agent`.
	ManagerArgs, AgentArgs []string
	// Server runs `ruche server` in node1 (a manager without an agent:
	// no replica there) instead of `ruche up`.
	Server bool
	// Timeout bounds each wait for the manager or a node (default 90s).
	Timeout time.Duration
}

// Cluster is ruche running on a testbed. The test process reaches the
// manager's API through the host's address on the bridge, so the testbed
// needs Config.HostAddress.
type Cluster struct {
	tb  *Testbed
	cfg ClusterConfig

	mu    sync.Mutex
	procs map[string]*Proc // node name → its ruche process
}

// StartCluster starts the manager in node1 and joins every other node.
func (tb *Testbed) StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if !tb.cfg.HostAddress || !tb.cfg.Docker {
		return nil, errors.New("testbed: a cluster needs Config.HostAddress and Config.Docker")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 90 * time.Second
	}
	c := &Cluster{tb: tb, cfg: cfg, procs: map[string]*Proc{}}
	if err := c.startManager(ctx); err != nil {
		return nil, err
	}
	for _, n := range tb.Nodes()[1:] {
		if err := c.Join(ctx, n.Name()); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Manager is node1, where `ruche up` runs.
func (c *Cluster) Manager() *Node { return c.tb.Nodes()[0] }

// ManagerURL is the API's URL (on node1's address).
func (c *Cluster) ManagerURL() string {
	return "https://" + net.JoinHostPort(c.Manager().Addr().String(), APIPort)
}

// DataDir is the ruche data dir of a node.
func (c *Cluster) DataDir(node string) string {
	return filepath.Join(c.tb.dataDir(), node, "ruche")
}

// AdminConf is the admin client config `ruche up` wrote.
func (c *Cluster) AdminConf() string {
	return filepath.Join(c.DataDir(c.Manager().Name()), "admin.conf")
}

// Process is the ruche process of a node (the last one started), or nil.
func (c *Cluster) Process(node string) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[node]
}

// Client is an API client with the admin config.
func (c *Cluster) Client() (*client.Client, error) {
	conf, err := client.LoadConfig(c.AdminConf())
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	cl, err := client.New(conf)
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	return cl, nil
}

// Ruche runs the CLI from the host with the admin config.
func (c *Cluster) Ruche(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, c.cfg.Bin, args...)
	cmd.Env = append(os.Environ(), "RUCHE_CONFIG="+c.AdminConf())
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func (c *Cluster) labelArgs(node string) []string {
	var out []string
	for _, l := range c.cfg.Labels[node] {
		out = append(out, "--label", l)
	}
	return out
}

func (c *Cluster) startManager(ctx context.Context) error {
	n := c.Manager()
	addr := n.Addr().String()
	if err := os.MkdirAll(c.DataDir(n.Name()), 0o700); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	sub := "up"
	if c.cfg.Server {
		sub = "server"
	}
	args := []string{sub, "--data-dir", c.DataDir(n.Name()), "--api-addr", net.JoinHostPort(addr, APIPort),
		"--node-name", n.Name()}
	if c.hasFlag(ctx, sub, "--advertise-addr") {
		args = append(args, "--advertise-addr", addr)
	}
	args = append(append(args, c.labelArgs(n.Name())...), c.cfg.ManagerArgs...)
	p, err := n.Start(c.cfg.Bin, args...)
	if err != nil {
		return err
	}
	c.setProc(n.Name(), p)
	err = c.wait(ctx, p, "the manager answers", func(ctx context.Context) bool {
		cl, err := c.Client()
		if err != nil {
			return false
		}
		_, err = cl.Status(ctx)
		return err == nil
	})
	if err != nil || c.cfg.Server {
		return err // a server is no node
	}
	return c.WaitNode(ctx, n.Name(), client.NodeReady)
}

// hasFlag says whether `ruche sub --help` lists flag.
func (c *Cluster) hasFlag(ctx context.Context, sub, flag string) bool {
	out, _ := exec.CommandContext(ctx, c.cfg.Bin, sub, "--help").CombinedOutput()
	return strings.Contains(string(out), flag+" ")
}

func (c *Cluster) setProc(node string, p *Proc) {
	c.mu.Lock()
	c.procs[node] = p
	c.mu.Unlock()
}

// Join makes a join token and runs `ruche agent --join` in the node, then
// waits until the managers list it ready.
func (c *Cluster) Join(ctx context.Context, node string, extra ...string) error {
	n, err := c.tb.node(node)
	if err != nil {
		return err
	}
	cl, err := c.Client()
	if err != nil {
		return err
	}
	tok, err := cl.CreateJoinToken(ctx, client.JoinRoleAgent, 0)
	if err != nil {
		return fmt.Errorf("testbed: join token: %w", err)
	}
	if err := os.MkdirAll(c.DataDir(node), 0o700); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	args := []string{"agent", "--join", c.ManagerURL(), "--token", tok.Token}
	if tok.CAHash != "" {
		args = append(args, "--ca-hash", tok.CAHash)
	}
	args = append(args, c.agentArgs(n)...)
	p, err := n.Start(c.cfg.Bin, append(args, extra...)...)
	if err != nil {
		return err
	}
	c.setProc(node, p)
	return c.WaitNode(ctx, node, client.NodeReady)
}

func (c *Cluster) agentArgs(n *Node) []string {
	args := []string{"--data-dir", c.DataDir(n.Name()), "--advertise-addr", n.Addr().String(), "--node-name", n.Name()}
	return append(append(args, c.labelArgs(n.Name())...), c.cfg.AgentArgs...)
}

// Restart starts the node's ruche again after Kill or PowerOff (and
// PowerOn): `ruche up` in node1, `ruche agent` with the identity saved in
// its data dir elsewhere. It does not wait.
func (c *Cluster) Restart(node string, extra ...string) error {
	n, err := c.tb.node(node)
	if err != nil {
		return err
	}
	if p := c.Process(node); p != nil && p.Running() {
		return fmt.Errorf("testbed: %s: ruche still runs (pid %d)", node, p.Pid())
	}
	var args []string
	if n == c.Manager() {
		args = c.Process(node).Args[1:]
	} else {
		args = append([]string{"agent"}, c.agentArgs(n)...)
	}
	p, err := n.Start(c.cfg.Bin, append(slices.Clone(args), extra...)...)
	if err != nil {
		return err
	}
	c.setProc(node, p)
	return nil
}

// WaitNode waits until the managers list node with status ("ready",
// "down").
func (c *Cluster) WaitNode(ctx context.Context, node, status string) error {
	return c.wait(ctx, c.Process(node), fmt.Sprintf("node %s %s", node, status), func(ctx context.Context) bool {
		cl, err := c.Client()
		if err != nil {
			return false
		}
		nodes, err := cl.Nodes(ctx)
		if err != nil {
			return false
		}
		for _, nd := range nodes {
			if nd.ID == node && nd.Status == status {
				return true
			}
		}
		return false
	})
}

// wait polls cond until it holds, p exits (when status is not about its
// death), or the timeout.
func (c *Cluster) wait(ctx context.Context, p *Proc, what string, cond func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		ok := cond(cctx)
		ccancel()
		if ok {
			return nil
		}
		var exited <-chan struct{}
		if p != nil && !strings.HasSuffix(what, client.NodeDown) {
			exited = p.Done()
		}
		select {
		case <-exited:
			return fmt.Errorf("testbed: waiting for %s: ruche exited (%v): %s", what, p.err, logTail(p.LogPath, 30))
		case <-ctx.Done():
			tail := ""
			if p != nil {
				tail = logTail(p.LogPath, 30)
			}
			return fmt.Errorf("testbed: waiting for %s: %w: %s", what, ctx.Err(), tail)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
