package agent_test

// Integration tests: the agent against the real dockerd, with the hello
// image built by testimage. Everything they create carries a unique
// project and node name and is removed at the end.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/runtime/docker"
	"github.com/ruche-platform/ruche/internal/store"
	"github.com/ruche-platform/ruche/internal/testimage"
)

const waitFor = 90 * time.Second // catches hangs only

var (
	imageOnce sync.Once
	imageErr  error
	imageTag  = fmt.Sprintf("ruche-agent-it-hello:%d", time.Now().UnixNano()%1e9)
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imageErr == nil && imageTag != "" {
		if rt, err := docker.New(docker.Config{}); err == nil {
			_, _ = rt.Client().ImageRemove(context.Background(), imageTag, image.RemoveOptions{Force: true, PruneChildren: true})
			rt.Close()
		}
	}
	os.Exit(code)
}

// env is one agent on the real engine, for one test.
type env struct {
	t       *testing.T
	rt      *docker.Runtime
	st      *store.Memory
	conn    *agent.LocalConn
	node    string
	project string
	dir     string
	// advertise is the agent's AdvertiseAddr.
	advertise string

	mu     sync.Mutex
	agent  *agent.Agent
	cancel context.CancelFunc
	done   chan error
}

type xorOpener struct{}

func (xorOpener) Open(sealed []byte) ([]byte, error) {
	out := make([]byte, len(sealed))
	for i, b := range sealed {
		out[i] = b ^ 0x5a
	}
	return out, nil
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rt, err := docker.New(docker.Config{PullTimeout: 30 * time.Second})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = rt.Ping(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker is required in CI: %v", err)
		}
		t.Skipf("no docker daemon: %v", err)
	}
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		imageErr = testimage.Build(ctx, rt.Client(), "github.com/ruche-platform/ruche/examples/hello", imageTag)
	})
	if imageErr != nil {
		t.Fatalf("build test image: %v", imageErr)
	}
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	e := &env{
		t: t, rt: rt, st: store.NewMemory(), node: "it-node-" + id, project: "rit" + id, dir: t.TempDir(),
	}
	e.conn = agent.NewLocalConn(e.st, xorOpener{})
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) start() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.agent = agent.New(agent.Config{NodeID: e.node, DataDir: e.dir, AdvertiseAddr: e.advertise}, agent.Deps{Runtime: e.rt, Conn: e.conn, Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	a := e.agent
	go func() { e.done <- a.Run(ctx) }()
}

func (e *env) stop() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("agent Run: %v", err)
	}
	e.cancel = nil
}

// cleanup stops the agent and removes everything of the test's node and
// project from the engine.
func (e *env) cleanup() {
	e.stop()
	ctx := context.Background()
	cs, _ := e.rt.List(ctx, map[string]string{runtime.LabelNode: e.node})
	for _, c := range cs {
		_ = e.rt.Remove(ctx, c.ID)
	}
	pl := map[string]string{runtime.LabelProject: e.project}
	nets, _ := e.rt.Networks(ctx, pl)
	for _, n := range nets {
		_ = e.rt.RemoveNetwork(ctx, n.Name)
	}
	vols, _ := e.rt.Volumes(ctx, pl)
	for _, v := range vols {
		_ = e.rt.RemoveVolume(ctx, v)
	}
	e.st.Close()
	e.rt.Close()
}

func (e *env) task(slot int, nonce string, spec client.ServiceSpec) store.TaskRecord {
	spec.Name = "web"
	spec.Image = imageTag
	if spec.StopGracePeriod == 0 {
		spec.StopGracePeriod = client.Duration(5 * time.Second)
	}
	return store.TaskRecord{
		Replica: client.Replica{
			ID: fmt.Sprintf("%s.web.%d.%s", e.project, slot, nonce), Project: e.project, Service: "web",
			Slot: slot, Version: 1, Node: e.node, DesiredState: client.DesiredRunning,
		},
		Spec: spec,
	}
}

func (e *env) put(t store.TaskRecord) {
	e.t.Helper()
	if _, err := e.st.Txn(context.Background(), nil, store.Put(store.TaskKey(t.Node, t.ID), store.Encode(t))); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) del(t store.TaskRecord) {
	e.t.Helper()
	if _, err := e.st.Txn(context.Background(), nil, store.Delete(store.TaskKey(t.Node, t.ID)), store.Delete(store.TaskStatusKey(t.ID))); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) status(id string) client.ReplicaStatus {
	var st client.ReplicaStatus
	_, _ = store.GetJSON(context.Background(), e.st, store.TaskStatusKey(id), &st)
	return st
}

// wait polls until cond holds on the task's status.
func (e *env) wait(id, what string, cond func(client.ReplicaStatus) bool) client.ReplicaStatus {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		if st := e.status(id); cond(st) {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("task %s: %s: not after %s; last status %+v", id, what, waitFor, e.status(id))
	return client.ReplicaStatus{}
}

func (e *env) waitState(id, state string) client.ReplicaStatus {
	e.t.Helper()
	return e.wait(id, "state "+state, func(st client.ReplicaStatus) bool { return st.State == state })
}

// until polls until cond holds; on failure it reports detail(), if given.
func (e *env) until(what string, cond func() bool, detail ...func() string) {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	var more string
	for _, d := range detail {
		more += "; " + d()
	}
	e.t.Fatalf("%s: not after %s%s", what, waitFor, more)
}

func httpDo(method, url, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func localPort(t *testing.T, st client.ReplicaStatus) string {
	t.Helper()
	for _, p := range st.Ports {
		if p.Target == 8080 && p.HostIP == "127.0.0.1" && p.Published != 0 {
			return fmt.Sprintf("http://127.0.0.1:%d", p.Published)
		}
	}
	t.Fatalf("no 8080 published on 127.0.0.1: %+v", st.Ports)
	return ""
}

var healthcheck = &client.HealthcheckSpec{
	Test:     []string{"CMD", "/hello", "health"},
	Interval: client.Duration(500 * time.Millisecond),
	Timeout:  client.Duration(3 * time.Second),
	Retries:  2,
}

func TestDockerLifecycle(t *testing.T) {
	e := newEnv(t)
	e.start()
	tk := e.task(1, "a1", client.ServiceSpec{
		Environment: map[string]string{"HELLO_VERSION": "v1"},
		Ports:       []client.PortSpec{{Target: 8080, HostIP: "127.0.0.1"}},
		Healthcheck: healthcheck,
	})
	tk2 := e.task(2, "b2", client.ServiceSpec{Environment: map[string]string{"HELLO_VERSION": "v1"}})
	e.put(tk)
	e.put(tk2)

	st := e.wait(tk.ID, "running and ready", func(st client.ReplicaStatus) bool { return st.State == client.StateRunning && st.Ready })
	if st.Health != "healthy" || st.Addresses["default"] == "" {
		t.Errorf("got health %q addresses %v, want healthy with an address on default", st.Health, st.Addresses)
	}
	code, body, err := httpDo("GET", localPort(t, st)+"/", "")
	if want := fmt.Sprintf("hello from web.1 on %s (version v1)\n", e.node); err != nil || code != 200 || body != want {
		t.Errorf("GET /: got %d %q %v, want %q", code, body, err, want)
	}
	e.waitState(tk2.ID, client.StateRunning)

	// Logs: both replicas, prefixed.
	var logs bytes.Buffer
	e.until("logs of both replicas", func() bool {
		logs.Reset()
		if err := e.agent.Logs(context.Background(), e.project, "web", agent.LogOptions{}, &logs); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(logs.String(), "web.1 | listening on :8080\n") &&
			strings.Contains(logs.String(), "web.2 | listening on :8080\n") &&
			strings.Contains(logs.String(), "web.1 | GET /\n")
	})

	// Follow picks up a replica that starts later.
	fctx, fcancel := context.WithCancel(context.Background())
	var follow syncBuffer
	fdone := make(chan error, 1)
	go func() {
		fdone <- e.agent.Logs(fctx, e.project, "web", agent.LogOptions{Follow: true, Tail: 1}, &follow)
	}()
	tk3 := e.task(3, "c3", client.ServiceSpec{})
	e.put(tk3)
	followed := func() string {
		return fmt.Sprintf("status of web.3 %+v; followed:\n%s", e.status(tk3.ID), follow.String())
	}
	e.until("followed logs of a new replica", func() bool { return strings.Contains(follow.String(), "web.3 | listening on :8080") }, followed)
	// And its next run, once: stopped behind the agent's back, web.3 is
	// restarted (same container) after 1s.
	st3 := e.waitState(tk3.ID, client.StateRunning)
	if err := e.rt.Stop(context.Background(), st3.ContainerID, "", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	e.until("followed logs of a restarted replica", func() bool {
		return strings.Count(follow.String(), "web.3 | listening on :8080\n") == 2
	}, followed)
	for _, line := range []string{"web.3 | shutting down\n", "web.3 | bye\n"} {
		if n := strings.Count(follow.String(), line); n != 1 {
			t.Errorf("followed %q %d times, want once; followed:\n%s", line, n, follow.String())
		}
	}
	fcancel()
	if err := <-fdone; err != nil {
		t.Errorf("follow: %v", err)
	}

	// Adoption: a restarted agent keeps the same containers.
	e.stop()
	before, err := e.rt.Inspect(context.Background(), st.ContainerID)
	if err != nil || !before.Running {
		t.Fatalf("container after agent stop: %+v, %v; want still running", before, err)
	}
	e.start()
	time.Sleep(time.Second)
	after := e.wait(tk.ID, "running and ready", func(st client.ReplicaStatus) bool { return st.State == client.StateRunning && st.Ready })
	if after.ContainerID != st.ContainerID {
		t.Errorf("container after agent restart: got %s, want the adopted %s", after.ContainerID, st.ContainerID)
	}
	if c, _ := e.rt.Inspect(context.Background(), st.ContainerID); !c.StartedAt.Equal(before.StartedAt) {
		t.Errorf("container restarted by the agent restart: started %v, was %v", c.StartedAt, before.StartedAt)
	}

	// Shutdown removes the container, and reports it.
	tk.DesiredState = client.DesiredShutdown
	e.put(tk)
	e.waitState(tk.ID, client.StateShutdown)
	if _, err := e.rt.Inspect(context.Background(), st.ContainerID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("container after shutdown: got %v, want not found", err)
	}
	// A task deleted without shutdown (orphaned) goes too.
	st2 := e.status(tk2.ID)
	e.del(tk2)
	e.until("container of a deleted task removed", func() bool {
		_, err := e.rt.Inspect(context.Background(), st2.ContainerID)
		return errors.Is(err, runtime.ErrNotFound)
	})
}

func TestDockerCrashAndUnhealthy(t *testing.T) {
	e := newEnv(t)
	e.start()
	crash := e.task(1, "a1", client.ServiceSpec{
		Environment:   map[string]string{"HELLO_CRASH_AFTER": "500ms"},
		RestartPolicy: client.RestartPolicy{Delay: client.Duration(200 * time.Millisecond)},
	})
	sick := e.task(2, "b2", client.ServiceSpec{
		Environment: map[string]string{"HELLO_UNHEALTHY": "1"},
		Healthcheck: healthcheck,
	})
	e.put(crash)
	e.put(sick)
	st := e.wait(crash.ID, "restarted twice", func(st client.ReplicaStatus) bool { return st.Restarts >= 2 })
	first := st.ContainerID
	e.wait(crash.ID, "restarting with exit code 1", func(st client.ReplicaStatus) bool {
		return st.State == client.StateRestarting && st.ExitCode == 1 && strings.HasPrefix(st.Message, "exited with code 1; restarting in ")
	})
	if got := e.status(crash.ID).ContainerID; got != first {
		t.Errorf("container changed on restart: got %s, want %s", got, first)
	}
	st = e.waitState(sick.ID, client.StateUnhealthy)
	if st.Ready || st.Health != "unhealthy" {
		t.Errorf("got %+v, want not ready, unhealthy", st)
	}
}

func TestDockerVolumesSecretsCleanup(t *testing.T) {
	for _, volumes := range []bool{false, true} {
		t.Run(fmt.Sprintf("volumes=%v", volumes), func(t *testing.T) {
			e := newEnv(t)
			e.start()
			ctx := context.Background()
			sealed := []byte("s3cret-value")
			for i := range sealed {
				sealed[i] ^= 0x5a
			}
			e.st.Txn(ctx, nil,
				store.Put(store.SecretKey(e.project, "pw"), store.Encode(store.SecretRecord{Sealed: sealed})),
				store.Put(store.ConfigKey(e.project, "conf"), store.Encode(store.ConfigRecord{Data: []byte("a=1\n")})))
			spec := client.ServiceSpec{
				Environment: map[string]string{"HELLO_DATA_DIR": "/data", "HELLO_READ_FILES": "1"},
				Ports:       []client.PortSpec{{Target: 8080, HostIP: "127.0.0.1"}},
				Mounts:      []client.MountSpec{{Type: client.MountVolume, Source: "data", Target: "/data"}},
				Secrets:     []client.FileRef{{Source: "pw"}},
				Configs:     []client.FileRef{{Source: "conf", Target: "/etc/app.conf"}},
			}
			a := e.task(1, "a1", spec)
			a.Volumes = map[string]client.VolumeSpec{"data": {Name: "data"}}
			e.put(a)
			st := e.waitState(a.ID, client.StateRunning)
			base := localPort(t, st)
			e.until("secret readable", func() bool {
				_, body, _ := httpDo("GET", base+"/file?path=/run/secrets/pw", "")
				return body == "s3cret-value"
			})
			if _, body, err := httpDo("GET", base+"/file?path=/etc/app.conf", ""); err != nil || body != "a=1\n" {
				t.Errorf("config: got %q, %v", body, err)
			}
			if code, _, err := httpDo("PUT", base+"/data/k", "kept"); err != nil || code != 204 {
				t.Fatalf("PUT /data/k: got %d, %v", code, err)
			}
			// Replace the replica: the new one sees the volume's data.
			a.DesiredState = client.DesiredShutdown
			e.put(a)
			e.waitState(a.ID, client.StateShutdown)
			e.del(a)
			b := e.task(1, "b1", spec)
			b.Volumes = a.Volumes
			e.put(b)
			st = e.waitState(b.ID, client.StateRunning)
			base = localPort(t, st)
			e.until("volume data survives the replacement", func() bool {
				_, body, _ := httpDo("GET", base+"/data/k", "")
				return body == "kept"
			})
			// ruche rm: the task goes, then the cleanup record.
			e.del(b)
			rec := store.CleanupRecord{Project: e.project, Volumes: volumes, Nodes: []string{e.node}}
			e.st.Txn(ctx, nil, store.Put(store.CleanupKey(e.project), store.Encode(rec)))
			e.until("cleanup record done", func() bool {
				_, err := e.st.Get(ctx, store.CleanupKey(e.project))
				return errors.Is(err, store.ErrNotFound)
			})
			pl := map[string]string{runtime.LabelProject: e.project}
			if nets, _ := e.rt.Networks(ctx, pl); len(nets) != 0 {
				t.Errorf("networks after cleanup: %v", nets)
			}
			vols, _ := e.rt.Volumes(ctx, pl)
			if want := map[bool]int{false: 1, true: 0}[volumes]; len(vols) != want {
				t.Errorf("volumes after cleanup (volumes=%v): got %v, want %d", volumes, vols, want)
			}
		})
	}
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
