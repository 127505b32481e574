package testbed

import (
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	dockerclient "github.com/docker/docker/client"

	"github.com/ruche-platform/ruche/internal/testimage"
)

// dockerdArgs are the node's dockerd flags: everything of its own (data,
// exec root, socket, pid file, an empty config file so the host's
// /etc/docker/daemon.json does not apply, addresses from the run's block,
// a cgroup parent and containerd namespaces named for the node).
func (n *Node) dockerdArgs() []string {
	p := n.tb.plan
	return []string{
		"--data-root", n.dataRoot(),
		"--exec-root", filepath.Join(n.dir, "exec"),
		"--pidfile", n.dockerPidFile(),
		"-H", n.DockerHost(),
		"--config-file", filepath.Join(n.dir, "daemon.json"),
		"--bip", p.BIP(n.index).String(),
		"--default-address-pool", "base=" + p.Pool(n.index).String() + ",size=27",
		"--cgroup-parent", "/" + n.ns,
		"--containerd-namespace", n.ns,
		"--containerd-plugins-namespace", n.ns + "-plugins",
		"--log-level", "warn",
	}
}

func (n *Node) dataRoot() string      { return filepath.Join(n.tb.dataDir(), n.name, "docker") }
func (n *Node) dockerPidFile() string { return filepath.Join(n.dir, "docker.pid") }

// StartDocker starts the node's dockerd (again, after PowerOff), waits
// until it answers, and builds the testbed's images into it.
func (n *Node) StartDocker(ctx context.Context) error {
	n.mu.Lock()
	running := n.docker != nil && n.docker.Running()
	n.mu.Unlock()
	if running {
		return nil
	}
	for _, d := range []string{n.dataRoot(), filepath.Join(n.dir, "exec")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("testbed: %w", err)
		}
	}
	// After PowerOff: dockerd trusts the pid in this file to be its
	// containerd, and the pid may be reused.
	os.Remove(filepath.Join(n.dir, "exec", "containerd", "containerd.pid"))
	// Its own engine key, hence its own engine ID (Swarm across the nodes
	// needs distinct ones); the default is the host's /etc/docker/key.json.
	conf, _ := json.Marshal(map[string]string{"deprecated-key-path": filepath.Join(n.dataRoot(), "key.json")})
	if err := os.WriteFile(filepath.Join(n.dir, "daemon.json"), conf, 0o644); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	p, err := n.start("dockerd", "dockerd", false, n.dockerdArgs()...)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.docker = p
	n.mu.Unlock()
	if err := n.waitDocker(ctx, p); err != nil {
		return err
	}
	for _, img := range n.tb.cfg.Images {
		if err := testimage.BuildHost(ctx, n.DockerHost(), img.Package, img.Ref); err != nil {
			return fmt.Errorf("testbed: %s: %w", n.name, err)
		}
	}
	n.tb.log.Info("dockerd ready", "node", n.name, "pid", p.Pid(), "host", n.DockerHost())
	return nil
}

// waitDocker polls the daemon until it answers, it exits, or the timeout.
func (n *Node) waitDocker(ctx context.Context, p *Proc) error {
	ctx, cancel := context.WithTimeout(ctx, n.tb.cfg.DockerTimeout)
	defer cancel()
	cli, err := n.Docker()
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("testbed: %s: dockerd exited: %v: %s", n.name, p.err, logTail(p.LogPath, 20))
		case <-ctx.Done():
			return fmt.Errorf("testbed: %s: dockerd does not answer: %w: %s", n.name, err, logTail(p.LogPath, 20))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Docker is a client of the node's daemon; the caller closes it.
func (n *Node) Docker() (*dockerclient.Client, error) {
	cli, err := dockerclient.NewClientWithOpts(dockerclient.WithHost(n.DockerHost()), dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("testbed: %s: docker client: %w", n.name, err)
	}
	return cli, nil
}

// DockerProc is the node's dockerd process, nil before StartDocker.
func (n *Node) DockerProc() *Proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.docker
}

// stopDocker stops dockerd (SIGTERM, then SIGKILL after timeout), then
// whatever of the node still runs (containerd, shims, containers).
func (n *Node) stopDocker(timeout time.Duration) {
	if p := n.DockerProc(); p != nil {
		p.Stop(timeout)
	}
	n.killRest()
}

// killRest SIGKILLs what is left of the node: processes in its network
// namespace and in its cgroups (the containers).
func (n *Node) killRest() {
	killNamespace(n.ns)
	killCgroups(n.ns)
}

func logTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// LoadImages copies images from another daemon (the host's, say) into the
// node's: `docker save` piped into `docker load`, no registry involved.
func (n *Node) LoadImages(ctx context.Context, from *dockerclient.Client, refs ...string) error {
	rc, err := from.ImageSave(ctx, refs)
	if err != nil {
		return fmt.Errorf("testbed: save %v: %w", refs, err)
	}
	defer rc.Close()
	cli, err := n.Docker()
	if err != nil {
		return err
	}
	defer cli.Close()
	resp, err := cli.ImageLoad(ctx, rc, dockerclient.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("testbed: %s: load %v: %w", n.name, refs, err)
	}
	defer resp.Body.Close()
	// The answer is a JSON stream; an error in it means the load failed.
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("testbed: %s: load %v: %w", n.name, refs, err)
	}
	if bytes.Contains(b, []byte(`"error"`)) {
		return fmt.Errorf("testbed: %s: load %v: %s", n.name, refs, bytes.TrimSpace(b))
	}
	return nil
}
