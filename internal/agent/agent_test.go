package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/privnet"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/store"
)

const testImage = "hello:1"

// countingConn counts status writes per task.
type countingConn struct {
	*LocalConn
	mu     sync.Mutex
	writes map[string][]client.ReplicaStatus
	// failReports makes status reports fail, as with no manager in reach.
	failReports atomic.Bool
}

func (c *countingConn) ReportStatus(ctx context.Context, id, node string, st client.ReplicaStatus) error {
	if c.failReports.Load() {
		return errors.New("no manager answered")
	}
	err := c.LocalConn.ReportStatus(ctx, id, node, st)
	if err == nil {
		c.mu.Lock()
		c.writes[id] = append(c.writes[id], st)
		c.mu.Unlock()
	}
	return err
}

func (c *countingConn) written(id string) []client.ReplicaStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]client.ReplicaStatus(nil), c.writes[id]...)
}

// reverseOpener "opens" a secret by reversing its bytes.
type reverseOpener struct{}

func (reverseOpener) Open(sealed []byte) ([]byte, error) {
	out := make([]byte, len(sealed))
	for i, b := range sealed {
		out[len(sealed)-1-i] = b
	}
	return out, nil
}

// harness runs an agent against a fake runtime and an in-memory store,
// inside the caller's synctest bubble.
type harness struct {
	t       *testing.T
	st      *store.Memory
	rt      *fakeRuntime
	conn    *countingConn
	agent   *Agent
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	dir     string
	drain   Drainer
	cluster string
	// advertise is the agent's AdvertiseAddr.
	advertise string
	// pn gives the agent ruche's own networks.
	pn *privnet.Manager
}

func newHarness(t *testing.T, rt *fakeRuntime) *harness {
	h := &harness{t: t, st: store.NewMemory(), rt: rt, reg: prometheus.NewRegistry(), dir: t.TempDir()}
	h.conn = &countingConn{LocalConn: NewLocalConn(h.st, reverseOpener{}), writes: map[string][]client.ReplicaStatus{}}
	t.Cleanup(h.st.Close)
	return h
}

func (h *harness) start() {
	h.reg = prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	h.agent = New(Config{NodeID: "n1", ClusterID: h.cluster, Hostname: "host1", DataDir: h.dir, AdvertiseAddr: h.advertise}, Deps{
		Runtime: h.rt, Conn: h.conn, Log: log, Metrics: h.reg, Events: events.NewRecorder(h.st, log), Drainer: h.drain,
		Networks: h.pn, InitBinary: "/usr/local/bin/ruche",
	})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.agent.Run(ctx) }()
	synctest.Wait()
}

// stop ends the agent and waits for Run to return.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
}

func task(slot int, nonce string, spec client.ServiceSpec) store.TaskRecord {
	spec.Name = "web"
	if spec.Image == "" {
		spec.Image = testImage
	}
	return store.TaskRecord{
		Replica: client.Replica{
			ID: "p.web." + itoa(slot) + "." + nonce, Project: "p", Service: "web", Slot: slot, Version: 1,
			Node: "n1", DesiredState: client.DesiredRunning,
		},
		Spec: spec,
	}
}

func itoa(n int) string { return client.Replica{Slot: n}.Name()[1:] }

func (h *harness) put(t store.TaskRecord) {
	h.t.Helper()
	if _, err := h.st.Txn(context.Background(), nil, store.Put(store.TaskKey(t.Node, t.ID), store.Encode(t))); err != nil {
		h.t.Fatal(err)
	}
	synctest.Wait()
}

func (h *harness) del(t store.TaskRecord) {
	h.t.Helper()
	if _, err := h.st.Txn(context.Background(), nil, store.Delete(store.TaskKey(t.Node, t.ID)), store.Delete(store.TaskStatusKey(t.ID))); err != nil {
		h.t.Fatal(err)
	}
	synctest.Wait()
}

func (h *harness) status(id string) client.ReplicaStatus {
	h.t.Helper()
	var st client.ReplicaStatus
	if _, err := store.GetJSON(context.Background(), h.st, store.TaskStatusKey(id), &st); err != nil && !errors.Is(err, store.ErrNotFound) {
		h.t.Fatal(err)
	}
	return st
}

// advance lets fake time pass, then waits for the bubble to settle.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// waitState advances time in small steps until the task reports state.
func (h *harness) waitState(id, state string) client.ReplicaStatus {
	h.t.Helper()
	for i := 0; i < 600; i++ {
		if st := h.status(id); st.State == state {
			return st
		}
		advance(100 * time.Millisecond)
	}
	h.t.Fatalf("task %s: got state %q, want %q", id, h.status(id).State, state)
	return client.ReplicaStatus{}
}

func TestRunsAndBecomesReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{
			Environment: map[string]string{"FOO": "bar"},
			Ports:       []client.PortSpec{{Target: 8080}},
			Healthcheck: &client.HealthcheckSpec{Test: []string{"CMD", "/hello", "health"}, Interval: client.Duration(2 * time.Second)},
		})
		h.put(tk)
		st := h.status(tk.ID)
		if st.State != client.StateStarting || st.Ready {
			t.Errorf("before the healthcheck: got %s ready=%v, want starting, not ready", st.State, st.Ready)
		}
		st = h.waitState(tk.ID, client.StateRunning)
		if !st.Ready || st.Health != runtime.HealthHealthy || st.ContainerID == "" {
			t.Errorf("got %+v, want ready, healthy, with a container", st)
		}
		if len(st.Ports) != 1 || st.Ports[0].Target != 8080 || st.Ports[0].Published == 0 {
			t.Errorf("ports: got %+v", st.Ports)
		}
		if got := st.Addresses["default"]; got == "" {
			t.Errorf("addresses: got %v, want one on the default network", st.Addresses)
		}
		c, spec, ok := h.rt.container(tk.ID)
		if !ok {
			t.Fatal("no container")
		}
		if got, want := c.Name, "p-web-1-a1"; got != want {
			t.Errorf("name: got %q, want %q", got, want)
		}
		for k, want := range map[string]string{"ruche.managed": "true", "ruche.project": "p", "ruche.service": "web", "ruche.slot": "1", "ruche.version": "1", "ruche.task": tk.ID, "ruche.node": "n1"} {
			if got := c.Labels[k]; got != want {
				t.Errorf("label %s: got %q, want %q", k, got, want)
			}
		}
		wantEnv := []string{"FOO=bar", "RUCHE_NODE=n1", "RUCHE_PROJECT=p", "RUCHE_REPLICA=1", "RUCHE_SERVICE=web"}
		if strings.Join(spec.Env, ",") != strings.Join(wantEnv, ",") {
			t.Errorf("env: got %v, want %v", spec.Env, wantEnv)
		}
		if len(spec.Networks) != 1 || spec.Networks[0].Network != "ruche-p-default" ||
			strings.Join(spec.Networks[0].Aliases, ",") != "web,1.web" {
			t.Errorf("networks: got %+v", spec.Networks)
		}
		if got := metricValue(t, h.reg, "ruche_agent_container_starts_total", ""); got != 1 {
			t.Errorf("starts metric: got %v, want 1", got)
		}
		if got := metricValue(t, h.reg, "ruche_replicas", client.StateRunning); got != 1 {
			t.Errorf("ruche_replicas{state=running}: got %v, want 1", got)
		}
		if got := metricValue(t, h.reg, "ruche_replicas", client.StateFailed); got != 0 {
			t.Errorf("ruche_replicas{state=failed}: got %v, want 0", got)
		}
		var node client.Node
		if _, err := store.GetJSON(context.Background(), h.st, store.NodeKey("n1"), &node); err != nil || node.Hostname != "host1" || node.Capacity.CPUs != 2 {
			t.Errorf("node record: got %+v, %v", node, err)
		}
	})
}

func TestStatusWrittenOnlyOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{})
		h.put(tk)
		h.waitState(tk.ID, client.StateRunning)
		before := len(h.conn.written(tk.ID))
		advance(5 * time.Minute) // ten resyncs
		h.rt.breakEvents()       // a reconnect and its resync
		advance(time.Minute)
		if got := len(h.conn.written(tk.ID)); got != before {
			t.Errorf("status writes: got %d after idle resyncs, want %d (%+v)", got, before, h.conn.written(tk.ID))
		}
		// The states written: preparing, then running.
		var states []string
		for _, st := range h.conn.written(tk.ID) {
			states = append(states, st.State)
		}
		if got, want := strings.Join(states, ","), "preparing,running"; got != want {
			t.Errorf("states written: got %s, want %s", got, want)
		}
	})
}

func TestRestartBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{Environment: map[string]string{"FAKE_EXIT_AFTER": "0s", "FAKE_EXIT_CODE": "3"}})
		start := time.Now()
		h.put(tk)
		// Exits at once: restarts 1s, 2s, 4s, 8s apart.
		wantAt := []time.Duration{1, 3, 7, 15}
		for i, at := range wantAt {
			st := h.status(tk.ID)
			if st.State != client.StateRestarting || st.ExitCode != 3 || st.Restarts != i {
				t.Fatalf("before restart %d: got %+v, want restarting, exit 3, %d restarts", i+1, st, i)
			}
			wantMsg := "exited with code 3; restarting in " + (time.Duration(1<<i) * time.Second).String()
			if st.Message != wantMsg {
				t.Errorf("message: got %q, want %q", st.Message, wantMsg)
			}
			advance(start.Add(at*time.Second).Sub(time.Now()) - time.Millisecond)
			if _, starts := h.rt.counts(); starts != i+1 {
				t.Fatalf("just before %s: got %d starts, want %d", at*time.Second, starts, i+1)
			}
			advance(time.Millisecond)
			if _, starts := h.rt.counts(); starts != i+2 {
				t.Fatalf("at %s: got %d starts, want %d", at*time.Second, starts, i+2)
			}
		}
		if creates, _ := h.rt.counts(); creates != 1 {
			t.Errorf("creates: got %d, want 1 (a restart reuses the container)", creates)
		}
		if got := metricValue(t, h.reg, "ruche_agent_restarts_total", ""); got != 4 {
			t.Errorf("restarts metric: got %v, want 4", got)
		}
	})
}

func TestMaxAttempts(t *testing.T) {
	tests := []struct {
		code      string
		wantState string
	}{
		{"1", client.StateFailed},
		{"0", client.StateComplete},
	}
	for _, tt := range tests {
		t.Run("exit "+tt.code, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, newFakeRuntime(testImage))
				h.start()
				defer h.stop()
				tk := task(1, "a1", client.ServiceSpec{
					Environment:   map[string]string{"FAKE_EXIT_AFTER": "0s", "FAKE_EXIT_CODE": tt.code},
					RestartPolicy: client.RestartPolicy{MaxAttempts: 2},
				})
				h.put(tk)
				st := h.waitState(tk.ID, tt.wantState)
				if st.Restarts != 2 {
					t.Errorf("restarts: got %d, want 2", st.Restarts)
				}
				advance(10 * time.Minute)
				if _, starts := h.rt.counts(); starts != 3 {
					t.Errorf("starts: got %d, want 3 (first run and 2 restarts)", starts)
				}
			})
		})
	}
}

func TestRestartConditions(t *testing.T) {
	tests := []struct {
		condition string
		code      string
		wantState string
	}{
		{client.RestartNone, "1", client.StateFailed},
		{client.RestartNone, "0", client.StateComplete},
		{client.RestartOnFailure, "0", client.StateComplete},
		{client.RestartOnFailure, "2", client.StateRestarting},
		{client.RestartAny, "0", client.StateRestarting},
	}
	for _, tt := range tests {
		t.Run(tt.condition+" exit "+tt.code, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, newFakeRuntime(testImage))
				h.start()
				defer h.stop()
				tk := task(1, "a1", client.ServiceSpec{
					Environment:   map[string]string{"FAKE_EXIT_AFTER": "1s", "FAKE_EXIT_CODE": tt.code},
					RestartPolicy: client.RestartPolicy{Condition: tt.condition},
				})
				h.put(tk)
				advance(1500 * time.Millisecond)
				if got := h.status(tk.ID).State; got != tt.wantState {
					t.Errorf("got %s, want %s", got, tt.wantState)
				}
			})
		})
	}
}

func TestWindowResetsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		// Runs 15s (longer than the 10s window) each time: every restart
		// comes after the base delay, and max attempts never trips.
		tk := task(1, "a1", client.ServiceSpec{
			Environment:   map[string]string{"FAKE_EXIT_AFTER": "15s"},
			RestartPolicy: client.RestartPolicy{MaxAttempts: 1},
		})
		h.put(tk)
		for i := 1; i <= 4; i++ {
			advance(15 * time.Second)
			st := h.status(tk.ID)
			if st.State != client.StateRestarting || st.Message != "exited with code 1; restarting in 1s" {
				t.Fatalf("exit %d: got %+v, want restarting in 1s", i, st)
			}
			advance(time.Second)
			if st := h.status(tk.ID); st.State != client.StateRunning || st.Restarts != i {
				t.Fatalf("after restart %d: got %+v", i, st)
			}
		}
	})
}

func TestShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		h.st.Txn(context.Background(), nil, store.Put(store.SecretKey("p", "pw"), store.Encode(store.SecretRecord{Sealed: []byte("terces")})))
		tk := task(1, "a1", client.ServiceSpec{
			StopSignal: "SIGINT",
			Secrets:    []client.FileRef{{Source: "pw"}},
		})
		h.put(tk)
		h.waitState(tk.ID, client.StateRunning)
		_, spec, _ := h.rt.container(tk.ID)
		var secretFile string
		for _, m := range spec.Mounts {
			if m.Target == "/run/secrets/pw" {
				secretFile = m.Source
			}
		}
		if b, err := os.ReadFile(secretFile); err != nil || string(b) != "secret" {
			t.Fatalf("secret file %q: got %q, %v", secretFile, b, err)
		}
		tk.DesiredState = client.DesiredShutdown
		h.put(tk)
		st := h.waitState(tk.ID, client.StateShutdown)
		if _, _, ok := h.rt.container(tk.ID); ok {
			t.Error("container still there after shutdown")
		}
		if st.ExitCode != 0 {
			t.Errorf("exit code: got %d, want 0", st.ExitCode)
		}
		h.rt.mu.Lock()
		stops := h.rt.stops
		h.rt.mu.Unlock()
		if len(stops) != 1 || stops[0].signal != "SIGINT" || stops[0].grace != 10*time.Second {
			t.Errorf("stops: got %+v, want one with SIGINT and the 10s default grace", stops)
		}
		if _, err := os.Stat(filepath.Join(h.dir, "run", tk.ID)); !os.IsNotExist(err) {
			t.Errorf("task files: got %v, want removed", err)
		}
		var states []string
		for _, s := range h.conn.written(tk.ID) {
			states = append(states, s.State)
		}
		if got, want := strings.Join(states, ","), "preparing,running,stopping,shutdown"; got != want {
			t.Errorf("states written: got %s, want %s", got, want)
		}
		// The controller deletes both keys; nothing is written again.
		h.del(tk)
		advance(time.Minute)
		if _, err := h.st.Get(context.Background(), store.TaskStatusKey(tk.ID)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("status after delete: got %v, want not found", err)
		}
		// The removed replica is counted in no state any more.
		for _, state := range allStates {
			if got := metricValue(t, h.reg, "ruche_replicas", state); got != 0 {
				t.Errorf("ruche_replicas{state=%s} after delete: got %v, want 0", state, got)
			}
		}
	})
}

func TestAdoptionAndOrphans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRuntime(testImage)
		h := newHarness(t, rt)
		kept := task(1, "a1", client.ServiceSpec{})
		orphan := task(2, "b2", client.ServiceSpec{})
		keptID := rt.addContainer(containerSpec(kept, nil), true)
		rt.addContainer(containerSpec(orphan, nil), true)
		other := task(3, "c3", client.ServiceSpec{})
		other.Node = "n2" // another node's container on a shared engine: not ours
		rt.addContainer(containerSpec(other, nil), true)
		h.put(kept)
		h.start()
		defer h.stop()
		st := h.waitState(kept.ID, client.StateRunning)
		if st.ContainerID != keptID {
			t.Errorf("container: got %s, want the adopted %s", st.ContainerID, keptID)
		}
		if creates, _ := rt.counts(); creates != 3 {
			t.Errorf("creates: got %d, want 3 (none by the agent)", creates)
		}
		if _, _, ok := rt.container(orphan.ID); ok {
			t.Error("orphan container not removed")
		}
		if _, _, ok := rt.container(other.ID); !ok {
			t.Error("another node's container was removed")
		}
		// A restarted agent adopts again, creating nothing.
		h.stop()
		h.start()
		advance(time.Second)
		if creates, _ := rt.counts(); creates != 3 {
			t.Errorf("creates after agent restart: got %d, want 3", creates)
		}
		if got := h.status(kept.ID).ContainerID; got != keptID {
			t.Errorf("container after agent restart: got %s, want %s", got, keptID)
		}
	})
}

func TestTaskDeletedRemovesContainer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{})
		h.put(tk)
		h.waitState(tk.ID, client.StateRunning)
		h.del(tk)
		advance(time.Second)
		if _, _, ok := h.rt.container(tk.ID); ok {
			t.Error("container of a deleted task still there")
		}
		if _, err := h.st.Get(context.Background(), store.TaskStatusKey(tk.ID)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("status of a deleted task: got %v, want not found (never outlives its task)", err)
		}
	})
}

func TestPullFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRuntime()
		rt.pullable["pullable:1"] = true
		h := newHarness(t, rt)
		h.start()
		defer h.stop()
		bad := task(1, "a1", client.ServiceSpec{Image: "nosuch:1"})
		good := task(2, "b2", client.ServiceSpec{Image: "pullable:1"})
		h.put(bad)
		h.put(good)
		st := h.waitState(bad.ID, client.StateFailed)
		if want := "image nosuch:1 not found locally and could not be pulled"; !strings.Contains(st.Message, want) {
			t.Errorf("message: got %q, want it to contain %q", st.Message, want)
		}
		h.waitState(good.ID, client.StateRunning)
		var sawPull bool
		for _, w := range h.conn.written(good.ID) {
			sawPull = sawPull || (w.State == client.StatePreparing && strings.HasPrefix(w.Message, "pulling: pullable:1"))
		}
		if !sawPull {
			t.Errorf("no pulling status written: %+v", h.conn.written(good.ID))
		}
	})
}

// TestCreateRequests: a replica of an image the engine has costs no image
// request (the creation would report it missing). A network the runtime
// believes exists but the engine finds missing, when it creates the
// container (current Docker) or when it starts it (Docker 20.10), is
// ensured again and the replica runs.
func TestCreateRequests(t *testing.T) {
	tests := []struct {
		name          string
		staleNets     int
		netsAtStart   bool
		wantImageAsks int
	}{
		{name: "network there", wantImageAsks: 0},
		{name: "network removed, checked at create", staleNets: 1, wantImageAsks: 1},
		{name: "network removed, checked at start", staleNets: 1, netsAtStart: true, wantImageAsks: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rt := newFakeRuntime(testImage)
				rt.staleNets, rt.netsAtStart = tt.staleNets, tt.netsAtStart
				h := newHarness(t, rt)
				h.start()
				defer h.stop()
				tk := task(1, "a1", client.ServiceSpec{})
				h.put(tk)
				h.waitState(tk.ID, client.StateRunning)
				for _, w := range h.conn.written(tk.ID) {
					if w.State != client.StatePreparing && w.State != client.StateRunning {
						t.Errorf("status written: got %+v, want only preparing and running", w)
					}
				}
				rt.mu.Lock()
				defer rt.mu.Unlock()
				if rt.imageAsks != tt.wantImageAsks || rt.creates != 1 || rt.starts != 1 {
					t.Errorf("image requests, creates, starts: got %d, %d, %d; want %d, 1, 1", rt.imageAsks, rt.creates, rt.starts, tt.wantImageAsks)
				}
			})
		})
	}
}

func TestUnhealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{
			Environment: map[string]string{"FAKE_UNHEALTHY": "1"},
			Healthcheck: &client.HealthcheckSpec{Test: []string{"CMD", "x"}, Interval: client.Duration(time.Second)},
		})
		h.put(tk)
		st := h.waitState(tk.ID, client.StateUnhealthy)
		if st.Ready || st.Health != runtime.HealthUnhealthy {
			t.Errorf("got %+v, want not ready, unhealthy", st)
		}
	})
}

func TestVanishedContainerIsRecreated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{})
		h.put(tk)
		first := h.waitState(tk.ID, client.StateRunning).ContainerID
		h.rt.Remove(context.Background(), first) // by hand, behind the agent's back
		synctest.Wait()
		if st := h.status(tk.ID); st.State != client.StateRestarting {
			t.Errorf("got %s, want restarting", st.State)
		}
		st := h.waitState(tk.ID, client.StateRunning)
		if st.ContainerID == first || st.Restarts != 1 {
			t.Errorf("got container %s restarts %d, want a new container and 1 restart", st.ContainerID, st.Restarts)
		}
	})
}

func TestCleanup(t *testing.T) {
	for _, volumes := range []bool{false, true} {
		t.Run("volumes="+map[bool]string{false: "false", true: "true"}[volumes], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, newFakeRuntime(testImage))
				h.start()
				defer h.stop()
				tk := task(1, "a1", client.ServiceSpec{Mounts: []client.MountSpec{{Type: client.MountVolume, Source: "data", Target: "/data"}}})
				tk.Volumes = map[string]client.VolumeSpec{"data": {Name: "data"}}
				h.put(tk)
				h.waitState(tk.ID, client.StateRunning)
				rec := store.CleanupRecord{Project: "p", Volumes: volumes, Nodes: []string{"n1", "n2"}}
				h.st.Txn(context.Background(), nil, store.Put(store.CleanupKey("p"), store.Encode(rec)))
				advance(time.Second)
				// A task is still assigned: nothing is removed.
				if nets, _ := h.rt.Networks(context.Background(), nil); len(nets) != 1 {
					t.Fatalf("networks while a task runs: got %v", nets)
				}
				h.del(tk)
				advance(time.Second)
				nets, _ := h.rt.Networks(context.Background(), nil)
				vols, _ := h.rt.Volumes(context.Background(), nil)
				if len(nets) != 0 {
					t.Errorf("networks: got %v, want none", nets)
				}
				if wantVols := map[bool]int{false: 1, true: 0}[volumes]; len(vols) != wantVols {
					t.Errorf("volumes: got %v, want %d", vols, wantVols)
				}
				var got store.CleanupRecord
				if _, err := store.GetJSON(context.Background(), h.st, store.CleanupKey("p"), &got); err != nil || strings.Join(got.Nodes, ",") != "n2" {
					t.Errorf("cleanup record: got %+v, %v; want only n2 left", got, err)
				}
			})
		})
	}
}

func TestStartFailureBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRuntime(testImage)
		rt.startErr = errors.New("port is already allocated")
		h := newHarness(t, rt)
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{})
		h.put(tk)
		st := h.status(tk.ID)
		if st.State != client.StateRestarting || !strings.Contains(st.Message, "could not start: port is already allocated; retrying in 1s") {
			t.Errorf("got %+v", st)
		}
		rt.mu.Lock()
		rt.startErr = nil
		rt.mu.Unlock()
		if st := h.waitState(tk.ID, client.StateRunning); st.Restarts != 1 {
			t.Errorf("restarts: got %d, want 1", st.Restarts)
		}
	})
}

// metricValue reads a counter, or a ruche_replicas gauge by state.
func metricValue(t *testing.T, reg *prometheus.Registry, name, state string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" && l.GetValue() == state {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{state=%q} not found", name, state)
	return 0
}

func TestAgentRestartKeepsRestartPolicyState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		tk := task(1, "a1", client.ServiceSpec{
			Environment:   map[string]string{"FAKE_EXIT_AFTER": "0s"},
			RestartPolicy: client.RestartPolicy{MaxAttempts: 1},
		})
		h.put(tk)
		h.waitState(tk.ID, client.StateFailed)
		h.stop()
		_, starts := h.rt.counts()
		h.start()
		defer h.stop()
		advance(time.Minute)
		if _, got := h.rt.counts(); got != starts {
			t.Errorf("starts after agent restart: got %d, want %d (the policy had given up)", got, starts)
		}
		if st := h.status(tk.ID); st.State != client.StateFailed || st.Restarts != 1 {
			t.Errorf("got %+v, want failed with 1 restart", st)
		}
	})
}

func TestMissedEventsCaughtByResync(t *testing.T) {
	tests := []struct {
		name    string
		recover func(h *harness)
		wantBy  time.Duration // after the exit
	}{
		// The periodic resync (30s) is the safety net.
		{"periodic resync", func(h *harness) {}, 31 * time.Second},
		// A broken event stream is reconnected and followed by a resync.
		{"reconnect", func(h *harness) { h.rt.breakEvents() }, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, newFakeRuntime(testImage))
				h.start()
				defer h.stop()
				tk := task(1, "a1", client.ServiceSpec{Environment: map[string]string{"FAKE_EXIT_AFTER": "5s"}})
				h.put(tk)
				h.waitState(tk.ID, client.StateRunning)
				h.rt.mute()
				advance(5 * time.Second) // the container exits, unseen
				if got := h.status(tk.ID).State; got != client.StateRunning {
					t.Fatalf("got %s right after an unseen exit, want running (the agent does not poll)", got)
				}
				tt.recover(h)
				advance(tt.wantBy)
				if got := h.status(tk.ID); got.State != client.StateRunning || got.Restarts != 1 {
					t.Errorf("got %s with %d restarts, want running again after 1 restart", got.State, got.Restarts)
				}
			})
		})
	}
}

// drainRecorder is a Drainer that takes a while and notes, for each task,
// whether its container was still running when the drain began and ended.
type drainRecorder struct {
	rt    *fakeRuntime
	mu    sync.Mutex
	calls []string
}

func (d *drainRecorder) Drain(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rt.mu.Lock()
	stopped := len(d.rt.stops)
	d.rt.mu.Unlock()
	d.calls = append(d.calls, fmt.Sprintf("%s stops-before=%d", id, stopped))
	time.Sleep(2 * time.Second) // requests in flight finishing
	return nil
}

func TestShutdownDrainsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRuntime(testImage)
		h := newHarness(t, rt)
		d := &drainRecorder{rt: rt}
		h.drain = d
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{})
		h.put(tk)
		h.waitState(tk.ID, client.StateRunning)
		tk.DesiredState = client.DesiredShutdown
		h.put(tk)
		h.waitState(tk.ID, client.StateShutdown)
		d.mu.Lock()
		defer d.mu.Unlock()
		if want := tk.ID + " stops-before=0"; len(d.calls) != 1 || d.calls[0] != want {
			t.Fatalf("drain calls: got %v, want [%s] (drained once, before the stop)", d.calls, want)
		}
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if len(rt.stops) != 1 {
			t.Fatalf("stops after the drain: got %d, want 1", len(rt.stops))
		}
	})
}

// TestOtherClusterOnSharedEngine: two clusters on one engine, with the same
// node name, leave each other's containers alone; the agent's own carry its
// cluster label.
func TestOtherClusterOnSharedEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRuntime(testImage)
		h := newHarness(t, rt)
		h.cluster = "c1"
		foreign := task(2, "b2", client.ServiceSpec{})
		spec := containerSpec(foreign, nil)
		spec.Labels[runtime.LabelCluster] = "c2"
		rt.addContainer(spec, true)
		mine := task(1, "a1", client.ServiceSpec{})
		h.put(mine)
		h.start()
		defer h.stop()
		h.waitState(mine.ID, client.StateRunning)
		advance(time.Second)
		if _, _, ok := rt.container(foreign.ID); !ok {
			t.Fatal("the agent of cluster c1 removed a container of cluster c2")
		}
		_, got, ok := rt.container(mine.ID)
		if !ok || got.Labels[runtime.LabelCluster] != "c1" {
			t.Fatalf("own container labels: %v", got.Labels)
		}
	})
}

// TestFailedReportsDoNotHoldAShutdown: a node whose status reports have
// been failing (no manager in reach) acts at once on a desired shutdown.
// The reports' retry backoff (grown to 16 s here) held every step back,
// so a replica the managers had moved away ran on until the next report.
func TestFailedReportsDoNotHoldAShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		h.conn.failReports.Store(true)
		tk := task(1, "a1", client.ServiceSpec{})
		h.put(tk)
		advance(20 * time.Second) // reports fail and back off: 1, 2, 4, 8, 16 s
		if c, _, ok := h.rt.container(tk.ID); !ok || !c.Running {
			t.Fatal("the replica does not run")
		}
		tk.DesiredState = client.DesiredShutdown
		h.put(tk)
		advance(time.Second)
		if _, _, ok := h.rt.container(tk.ID); ok {
			t.Fatal("the replica still runs 1 s after its desired shutdown: the failed reports' retry held it")
		}
	})
}
