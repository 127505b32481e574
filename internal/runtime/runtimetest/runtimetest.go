// Package runtimetest is the conformance suite every runtime.Runtime driver
// must pass, whatever its engine. A driver's own test calls Run with a
// working instance and an image built from examples/hello (see
// internal/testimage). Published ports are reached on 127.0.0.1 only.
package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
)

// Config tells the suite what it may use.
type Config struct {
	// Image is present in the runtime and built from examples/hello.
	Image string
	// Prefix starts the name of everything the suite creates; it must be
	// unique to the run. Everything is removed at the end.
	Prefix string
	// Timeout bounds each wait for the engine (default 60s). It only
	// catches hangs: nothing is asserted about speed.
	Timeout time.Duration
}

// Label marks every container the suite creates (value: Config.Prefix).
const Label = "ruche.conformance"

// Run runs the suite against rt.
func Run(t *testing.T, rt runtime.Runtime, cfg Config) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	s := &suite{rt: rt, cfg: cfg}
	t.Cleanup(func() { s.cleanup(t) })
	t.Run("Info", s.testInfo)
	t.Run("Images", s.testImages)
	t.Run("NetworksAndVolumes", s.testNetworksAndVolumes)
	t.Run("Lifecycle", s.testLifecycle)
	t.Run("ExitCode", s.testExitCode)
	t.Run("Logs", s.testLogs)
	t.Run("Mounts", s.testMounts)
	t.Run("TwoNetworks", s.testTwoNetworks)
	t.Run("NotFound", s.testNotFound)
	t.Run("NoNetwork", s.testNoNetwork)
}

type suite struct {
	rt  runtime.Runtime
	cfg Config
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.cfg.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) name(n string) string { return s.cfg.Prefix + "-" + n }

func (s *suite) labels() map[string]string { return map[string]string{Label: s.cfg.Prefix} }

func (s *suite) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	cs, err := s.rt.List(ctx, s.labels())
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, c := range cs {
		if err := s.rt.Remove(ctx, c.ID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	nets, _ := s.rt.Networks(ctx, s.labels())
	for _, n := range nets {
		_ = s.rt.RemoveNetwork(ctx, n.Name)
	}
	vols, _ := s.rt.Volumes(ctx, s.labels())
	for _, v := range vols {
		_ = s.rt.RemoveVolume(ctx, v)
	}
}

// spec is a hello container joined to no network (the engine's default).
func (s *suite) spec(n string, env ...string) runtime.ContainerSpec {
	labels := s.labels()
	labels[runtime.LabelManaged] = "true"
	labels[runtime.LabelTask] = s.name(n)
	return runtime.ContainerSpec{
		Name:      s.name(n),
		Image:     s.cfg.Image,
		Env:       env,
		Labels:    labels,
		StopGrace: 5 * time.Second,
	}
}

// eventually polls cond until it holds or the timeout passes.
func (s *suite) eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(s.cfg.Timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s (last error: %v)", what, s.cfg.Timeout, last)
}

func (s *suite) create(t *testing.T, spec runtime.ContainerSpec) string {
	t.Helper()
	id, err := s.rt.Create(s.ctx(t), spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return id
}

func (s *suite) testInfo(t *testing.T) {
	info, err := s.rt.Info(s.ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.NCPU <= 0 || info.MemTotal <= 0 {
		t.Errorf("got NCPU %d MemTotal %d, want both > 0", info.NCPU, info.MemTotal)
	}
}

func (s *suite) testImages(t *testing.T) {
	ctx := s.ctx(t)
	ok, err := s.rt.ImagePresent(ctx, s.cfg.Image)
	if err != nil || !ok {
		t.Errorf("ImagePresent(%s): got %v, %v; want true, nil", s.cfg.Image, ok, err)
	}
	// A registry on a refused loopback port: the pull fails at once and
	// no lookup or connection leaves the machine (a name without a
	// registry host would make dockerd resolve Docker Hub).
	missing := "127.0.0.1:1/" + s.cfg.Prefix + "-nosuch:1"
	ok, err = s.rt.ImagePresent(ctx, missing)
	if err != nil || ok {
		t.Errorf("ImagePresent(%s): got %v, %v; want false, nil", missing, ok, err)
	}
	if ep, cmd, err := s.rt.ImageCommand(ctx, s.cfg.Image); err != nil || len(ep)+len(cmd) == 0 || (len(ep) > 0 && ep[0] != "/hello") {
		t.Errorf("ImageCommand(%s): got %v %v, %v; want the hello image's /hello", s.cfg.Image, ep, cmd, err)
	}
	if _, _, err := s.rt.ImageCommand(ctx, missing); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("ImageCommand(%s): got %v, want ErrNotFound", missing, err)
	}
	err = s.rt.PullImage(ctx, missing, nil)
	if !errors.Is(err, runtime.ErrPull) {
		t.Errorf("PullImage(%s): got %v, want an error wrapping ErrPull", missing, err)
	}
	if err != nil && !strings.Contains(err.Error(), missing) {
		t.Errorf("PullImage error %q does not name the image", err)
	}
}

func (s *suite) testNetworksAndVolumes(t *testing.T) {
	ctx := s.ctx(t)
	n := runtime.Network{Name: s.name("net"), Labels: s.labels()}
	v := runtime.Volume{Name: s.name("vol"), Labels: s.labels()}
	for i := 0; i < 2; i++ { // idempotent
		if err := s.rt.EnsureNetwork(ctx, n); err != nil {
			t.Fatalf("EnsureNetwork #%d: %v", i+1, err)
		}
		if err := s.rt.EnsureVolume(ctx, v); err != nil {
			t.Fatalf("EnsureVolume #%d: %v", i+1, err)
		}
	}
	nets, err := s.rt.Networks(ctx, s.labels())
	if err != nil || !contains(runtime.NetworkNames(nets), n.Name) {
		t.Errorf("Networks: got %v, %v; want %s listed", nets, err, n.Name)
	}
	for _, got := range nets {
		// What a sweep of unused networks goes by: the labels it was
		// made with and when.
		if got.Name == n.Name && (!maps.Equal(got.Labels, n.Labels) || time.Since(got.Created) > time.Hour || time.Until(got.Created) > time.Minute) {
			t.Errorf("Networks: %s has labels %v and was created %v; want %v, just now", n.Name, got.Labels, got.Created, n.Labels)
		}
	}
	vols, err := s.rt.Volumes(ctx, s.labels())
	if err != nil || !contains(vols, v.Name) {
		t.Errorf("Volumes: got %v, %v; want %s listed", vols, err, v.Name)
	}
	for i := 0; i < 2; i++ { // absent is not an error
		if err := s.rt.RemoveNetwork(ctx, n.Name); err != nil {
			t.Errorf("RemoveNetwork #%d: %v", i+1, err)
		}
		if err := s.rt.RemoveVolume(ctx, v.Name); err != nil {
			t.Errorf("RemoveVolume #%d: %v", i+1, err)
		}
	}
	nets, _ = s.rt.Networks(ctx, s.labels())
	vols, _ = s.rt.Volumes(ctx, s.labels())
	if contains(runtime.NetworkNames(nets), n.Name) || contains(vols, v.Name) {
		t.Errorf("after removal: networks %v, volumes %v", nets, vols)
	}

	// Replicas of one project ensure its network at the same time: one
	// network comes out (Docker itself does not enforce unique names).
	n.Name = s.name("net-race")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.rt.EnsureNetwork(ctx, n)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent EnsureNetwork: %v", err)
		}
	}
	nets, _ = s.rt.Networks(ctx, s.labels())
	count := 0
	for _, got := range nets {
		if got.Name == n.Name {
			count++
		}
	}
	if count != 1 {
		t.Errorf("concurrent EnsureNetwork: got %d networks named %s, want 1", count, n.Name)
	}
	if err := s.rt.RemoveNetwork(ctx, n.Name); err != nil {
		t.Error(err)
	}
}

// eventLog collects events in the background.
type eventLog struct {
	mu  sync.Mutex
	evs []runtime.Event
}

func (l *eventLog) has(id, action, health string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e.ContainerID == id && e.Action == action && (health == "" || e.Health == health) {
			return true
		}
	}
	return false
}

func (s *suite) watch(t *testing.T) *eventLog {
	ctx, cancel := context.WithCancel(context.Background())
	evs, errc := s.rt.Events(ctx, s.labels())
	l := &eventLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case e := <-evs:
				l.mu.Lock()
				l.evs = append(l.evs, e)
				l.mu.Unlock()
			case <-errc:
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (s *suite) testLifecycle(t *testing.T) {
	ctx := s.ctx(t)
	evs := s.watch(t)
	netName := s.name("lc-net")
	if err := s.rt.EnsureNetwork(ctx, runtime.Network{Name: netName, Labels: s.labels()}); err != nil {
		t.Fatal(err)
	}
	spec := s.spec("lc", "RUCHE_SERVICE=web", "RUCHE_REPLICA=1", "RUCHE_NODE=n1", "HELLO_VERSION=7")
	spec.Ports = []client.PortSpec{{Target: 8080, HostIP: "127.0.0.1"}}
	spec.Networks = []runtime.Attachment{{Network: netName, Aliases: []string{"web", "1.web"}}}
	spec.Healthcheck = &client.HealthcheckSpec{
		Test:     []string{"CMD", "/hello", "health"},
		Interval: client.Duration(500 * time.Millisecond),
		Timeout:  client.Duration(2 * time.Second),
		Retries:  3,
	}
	id := s.create(t, spec)
	c, err := s.rt.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != runtime.StatusCreated || c.Running || c.Name != spec.Name || c.Labels[runtime.LabelTask] != spec.Name {
		t.Errorf("created: got status %q running %v name %q labels %v", c.Status, c.Running, c.Name, c.Labels)
	}
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "healthy", func() (bool, error) {
		c, err = s.rt.Inspect(ctx, id)
		return err == nil && c.Running && c.Health == runtime.HealthHealthy, err
	})
	if c.Status != runtime.StatusRunning || c.StartedAt.IsZero() {
		t.Errorf("running: got status %q started %v", c.Status, c.StartedAt)
	}
	if c.Addresses[netName] == "" {
		t.Errorf("addresses: got %v, want one on %s", c.Addresses, netName)
	}
	if len(c.Ports) != 1 || c.Ports[0].Target != 8080 || c.Ports[0].Published == 0 || c.Ports[0].HostIP != "127.0.0.1" || c.Ports[0].Protocol != "tcp" {
		t.Fatalf("ports: got %+v, want 8080/tcp on 127.0.0.1:<ephemeral>", c.Ports)
	}
	body, err := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/", c.Ports[0].Published))
	if want := "hello from web.1 on n1 (version 7)\n"; err != nil || body != want {
		t.Errorf("GET /: got %q, %v; want %q", body, err, want)
	}
	list, err := s.rt.List(ctx, map[string]string{runtime.LabelTask: spec.Name})
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("List by task label: got %v, %v; want just %s", list, err, id)
	}
	sums, err := s.rt.ListSummaries(ctx, map[string]string{runtime.LabelTask: spec.Name})
	if err != nil || len(sums) != 1 || sums[0].ID != id || sums[0].Name != spec.Name || !sums[0].Running ||
		sums[0].Status != runtime.StatusRunning || sums[0].Labels[runtime.LabelTask] != spec.Name {
		t.Errorf("ListSummaries by task label: got %+v, %v; want %s running, named %s", sums, err, id, spec.Name)
	}
	// Graceful stop: hello handles SIGTERM and exits 0.
	if err := s.rt.Stop(ctx, id, "", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c, err = s.rt.Inspect(ctx, id)
	if err != nil || c.Running || c.Status != runtime.StatusExited || c.ExitCode != 0 || c.FinishedAt.IsZero() {
		t.Errorf("stopped: got %+v, %v; want exited 0", c, err)
	}
	if err := s.rt.Stop(ctx, id, "", time.Second); err != nil {
		t.Errorf("stopping a stopped container: %v", err)
	}
	// A restart is a start of the same container.
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "running again", func() (bool, error) {
		c, err = s.rt.Inspect(ctx, id)
		return err == nil && c.Running, err
	})
	if err := s.rt.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rt.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("inspect removed: got %v, want ErrNotFound", err)
	}
	if err := s.rt.Remove(ctx, id); err != nil {
		t.Errorf("removing a removed container: %v", err)
	}
	s.eventually(t, "events start, health_status healthy, die, destroy", func() (bool, error) {
		return evs.has(id, runtime.EventStart, "") && evs.has(id, runtime.EventHealth, runtime.HealthHealthy) &&
			evs.has(id, runtime.EventDie, "") && evs.has(id, runtime.EventDestroy, ""), nil
	})
}

func (s *suite) testExitCode(t *testing.T) {
	ctx := s.ctx(t)
	evs := s.watch(t)
	id := s.create(t, s.spec("exit", "HELLO_EXIT=3"))
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "die event", func() (bool, error) { return evs.has(id, runtime.EventDie, ""), nil })
	c, err := s.rt.Inspect(ctx, id)
	if err != nil || c.Running || c.ExitCode != 3 {
		t.Errorf("got running %v exit %d (%v), want exited 3", c.Running, c.ExitCode, err)
	}
}

func (s *suite) testLogs(t *testing.T) {
	ctx := s.ctx(t)
	id := s.create(t, s.spec("logs", "HELLO_EXIT=0"))
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "exited", func() (bool, error) {
		c, err := s.rt.Inspect(ctx, id)
		return err == nil && c.Status == runtime.StatusExited, err
	})
	var stdout, stderr bytes.Buffer
	if err := s.rt.Logs(ctx, id, runtime.LogOptions{}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	// hello logs to stderr.
	if got, want := stderr.String(), "exiting with code 0 as asked\n"; got != want {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: got %q, want nothing", stdout.String())
	}
	// Follow on a running container streams until ctx ends.
	id = s.create(t, s.spec("logs-follow"))
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	w := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- s.rt.Logs(fctx, id, runtime.LogOptions{Follow: true}, w, w) }()
	s.eventually(t, "followed line", func() (bool, error) { return strings.Contains(w.String(), "listening on :8080"), nil })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow ended with %v, want nil on cancel", err)
		}
	case <-time.After(s.cfg.Timeout):
		t.Fatal("follow did not end with its context")
	}
}

func (s *suite) testMounts(t *testing.T) {
	ctx := s.ctx(t)
	vol := s.name("mnt-vol")
	if err := s.rt.EnsureVolume(ctx, runtime.Volume{Name: vol, Labels: s.labels()}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cret"), 0o444); err != nil {
		t.Fatal(err)
	}
	spec := s.spec("mnt", "HELLO_DATA_DIR=/data", "HELLO_READ_FILES=1")
	spec.Ports = []client.PortSpec{{Target: 8080, HostIP: "127.0.0.1"}}
	spec.Mounts = []runtime.Mount{
		{Type: client.MountVolume, Source: vol, Target: "/data"},
		{Type: client.MountBind, Source: filepath.Join(dir, "secret"), Target: "/run/secrets/s", ReadOnly: true},
		{Type: client.MountTmpfs, Target: "/tmp"},
	}
	id := s.create(t, spec)
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	var c runtime.Container
	s.eventually(t, "running with a port", func() (bool, error) {
		var err error
		c, err = s.rt.Inspect(ctx, id)
		return err == nil && c.Running && len(c.Ports) == 1, err
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", c.Ports[0].Published)
	var body string
	s.eventually(t, "secret readable", func() (bool, error) {
		var err error
		body, err = httpGet(ctx, base+"/file?path=/run/secrets/s")
		return body == "s3cret", err
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/data/k", strings.NewReader("v1"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT /data/k: got %s, want 204", resp.Status)
	}
	if err := s.rt.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	// A new container on the same volume sees the data.
	spec.Name = s.name("mnt2")
	id = s.create(t, spec)
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "running with a port", func() (bool, error) {
		var err error
		c, err = s.rt.Inspect(ctx, id)
		return err == nil && c.Running && len(c.Ports) == 1, err
	})
	base = fmt.Sprintf("http://127.0.0.1:%d", c.Ports[0].Published)
	s.eventually(t, "volume data survives", func() (bool, error) {
		var err error
		body, err = httpGet(ctx, base+"/data/k")
		return body == "v1", err
	})
}

func (s *suite) testTwoNetworks(t *testing.T) {
	ctx := s.ctx(t)
	a, b := s.name("net-a"), s.name("net-b")
	for _, n := range []string{a, b} {
		if err := s.rt.EnsureNetwork(ctx, runtime.Network{Name: n, Labels: s.labels()}); err != nil {
			t.Fatal(err)
		}
	}
	spec := s.spec("two-nets")
	spec.Networks = []runtime.Attachment{{Network: a, Aliases: []string{"x"}}, {Network: b, Aliases: []string{"y"}}}
	id := s.create(t, spec)
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "addresses on both networks", func() (bool, error) {
		c, err := s.rt.Inspect(ctx, id)
		return err == nil && c.Addresses[a] != "" && c.Addresses[b] != "", err
	})
	if err := s.rt.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// testNoNetwork: a container without network (the agent wires it itself)
// runs with no engine address, its process ID known, its name server set;
// one with published ports is refused.
func (s *suite) testNoNetwork(t *testing.T) {
	ctx := s.ctx(t)
	spec := s.spec("no-net")
	spec.NoNetwork, spec.DNS, spec.DNSSearch = true, []string{"192.0.2.53"}, []string{"p.internal"}
	id := s.create(t, spec)
	if err := s.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, "running", func() (bool, error) {
		c, err := s.rt.Inspect(ctx, id)
		return err == nil && c.Running, err
	})
	c, err := s.rt.Inspect(ctx, id)
	if err != nil || c.Pid <= 0 || len(c.Addresses) != 0 {
		t.Errorf("got pid %d addresses %v, %v; want a process and no address", c.Pid, c.Addresses, err)
	}
	if err := s.rt.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if c, err := s.rt.Inspect(ctx, id); err == nil && c.Pid != 0 {
		t.Errorf("removed container: pid %d", c.Pid)
	}
	spec = s.spec("no-net-ports")
	spec.NoNetwork, spec.Ports = true, []client.PortSpec{{Target: 8080}}
	if _, err := s.rt.Create(ctx, spec); err == nil {
		t.Error("no network with published ports: created")
	}
}

func (s *suite) testNotFound(t *testing.T) {
	ctx := s.ctx(t)
	spec := s.spec("no-image")
	spec.Image = s.cfg.Prefix + "-nosuch:1"
	if _, err := s.rt.Create(ctx, spec); err == nil {
		t.Error("Create with a missing image: got nil error")
	}
	if err := s.rt.Start(ctx, "nosuchcontainer"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Start of a missing container: got %v, want ErrNotFound", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
