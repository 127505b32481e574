package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Node is one machine of the testbed: a network namespace with one
// address on the bridge, optionally its own dockerd, and the processes
// started in it.
type Node struct {
	tb    *Testbed
	index int
	name  string // "node1"...
	ns    string // ruche-tb-<run>-<n>
	veth  string // the host side of its link
	addr  netip.Addr
	dir   string // RunDir/<run>/node<n>: sockets, pid files, logs

	mu     sync.Mutex
	procs  []*Proc
	docker *Proc
	seq    int
}

func (tb *Testbed) newNode(i int) *Node {
	name := "node" + strconv.Itoa(i)
	return &Node{
		tb: tb, index: i, name: name,
		ns:   nsName(tb.run, i),
		veth: vethName(tb.run, i),
		addr: tb.plan.NodeAddr(i),
		dir:  filepath.Join(tb.runDir(), name),
	}
}

// Name is the node's name ("node1"...), fit for `ruche --node-name`.
func (n *Node) Name() string { return n.name }

// Addr is the node's address on the bridge.
func (n *Node) Addr() netip.Addr { return n.addr }

// NetNS is the name of the node's network namespace.
func (n *Node) NetNS() string { return n.ns }

// NetNSPath is the namespace's file, for nsenter --net=.
func (n *Node) NetNSPath() string { return netnsPath(n.ns) }

// Link is the host side of the node's veth pair.
func (n *Node) Link() string { return n.veth }

// Dir is the node's directory for sockets, pid files and logs.
func (n *Node) Dir() string { return n.dir }

// DockerSocket is the path of the node's dockerd socket.
func (n *Node) DockerSocket() string { return filepath.Join(n.dir, "docker.sock") }

// DockerHost is the DOCKER_HOST of the node's dockerd.
func (n *Node) DockerHost() string { return "unix://" + n.DockerSocket() }

// Command builds a command that runs inside the node's namespace, with
// DOCKER_HOST set to the node's daemon. The caller runs and waits for it;
// processes meant to outlive a call go through Start, which tracks them.
func (n *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := nsCommand(ctx, n.ns, name, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+n.DockerHost())
	return cmd
}

// Exec runs a command in the node's namespace and returns its combined
// output.
func (n *Node) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("testbed: %s: %s: %w", n.name, name, err)
	}
	return out, nil
}

// Proc is a process started in a node and tracked by its pid; the
// testbed stops it at Close (or, after a crash, the next Start does).
type Proc struct {
	Name    string
	Args    []string // the program and its arguments
	LogPath string   // its standard output and error
	cmd     *exec.Cmd
	pidFile string
	done    chan struct{}
	err     error
}

// Start starts name in the node's namespace with its output appended to
// a log file in the node's directory. The process is not bound to a
// context: Stop, Kill, the node's Kill or the testbed's Close end it.
func (n *Node) Start(name string, args ...string) (*Proc, error) {
	n.mu.Lock()
	n.seq++
	seq := n.seq
	n.mu.Unlock()
	return n.start(filepath.Base(name)+"-"+strconv.Itoa(seq), name, true, args...)
}

// start starts a process; track lists it in the node's Procs.
func (n *Node) start(label, name string, track bool, args ...string) (*Proc, error) {
	if err := os.MkdirAll(filepath.Join(n.dir, "procs"), 0o755); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	logPath := filepath.Join(n.dir, label+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", nsArgs(n.ns, name, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+n.DockerHost())
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a ^C to the test does not reach it first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testbed: %s: start %s: %w", n.name, name, err)
	}
	p := &Proc{Name: label, Args: append([]string{name}, args...), LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	// nsenter execs the program in place: the pid is the program's.
	if st, err := procStart(cmd.Process.Pid); err == nil {
		p.pidFile = filepath.Join(n.dir, "procs", strconv.Itoa(cmd.Process.Pid))
		os.WriteFile(p.pidFile, []byte(strconv.FormatUint(st, 10)), 0o644)
	}
	go func() {
		p.err = cmd.Wait()
		if p.pidFile != "" {
			os.Remove(p.pidFile)
		}
		close(p.done)
	}()
	if track {
		n.mu.Lock()
		n.procs = append(n.procs, p)
		n.mu.Unlock()
	}
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Running says whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM, waits up to timeout, then SIGKILL; it returns once
// the process has exited.
func (p *Proc) Stop(timeout time.Duration) {
	if !p.Running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Procs lists the processes started in the node (dockerd left out),
// exited ones included.
func (n *Node) Procs() []*Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Proc(nil), n.procs...)
}

// stopProcs stops the processes started with Start, in parallel.
func (n *Node) stopProcs(timeout time.Duration) {
	var wg sync.WaitGroup
	for _, p := range n.Procs() {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop(timeout) }()
	}
	wg.Wait()
}
