package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/nodes"
	"github.com/ruche-platform/ruche/internal/store"
)

// cluster is the harness with nodes n1..n3, each with a fake agent that
// beats to a node health tracker, and the node monitor running beside the
// controller: node failures end to end, on fake time.
type cluster struct {
	*harness
	tr    *nodes.Tracker
	mu    sync.Mutex
	nodes map[string]*fakeNode
}

type fakeNode struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newCluster(t *testing.T, s script) *cluster {
	t.Helper()
	h := newHarness(t, s)
	c := &cluster{harness: h, tr: nodes.NewTracker(nodes.Config{}), nodes: map[string]*fakeNode{}}
	for _, id := range []string{"n2", "n3"} {
		h.put(store.NodeKey(id), client.Node{
			ID: id, Hostname: "box-" + id, Role: "agent", Status: client.NodeReady, Availability: client.AvailabilityActive,
			Capacity: client.ResourceAmounts{CPUs: 4, Memory: 8 << 30},
		})
		c.start(id)
	}
	c.beat("n1", h.ctx) // n1's fake agent is the harness's own: it never dies
	log := slog.New(slog.DiscardHandler)
	mon := nodes.NewMonitor(nodes.MonitorDeps{Store: h.st, Tracker: c.tr, Events: events.NewRecorder(h.st, log), Log: log})
	h.wg.Add(1)
	go func() { defer h.wg.Done(); mon.Run(h.ctx) }()
	return c
}

// start runs node id's agent and heartbeats.
func (c *cluster) start(id string) {
	ctx, cancel := context.WithCancel(c.ctx)
	n := &fakeNode{cancel: cancel, done: make(chan struct{})}
	a := newFakeAgent(c.st, id, c.agent.script)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(n.done)
		a.run(ctx)
	}()
	c.beat(id, ctx)
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
}

func (c *cluster) beat(id string, ctx context.Context) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			c.tr.Beat(id, client.NodeLoad{})
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

// kill stops node id's agent and heartbeats: its replicas' last reports
// stay in the store, as when a machine dies.
func (c *cluster) kill(id string) {
	c.mu.Lock()
	n := c.nodes[id]
	c.mu.Unlock()
	n.cancel()
	<-n.done
}

// down kills node id and waits until the monitor marks it down.
func (c *cluster) down(id string) {
	c.t.Helper()
	c.kill(id)
	c.waitFor(id+" down", 15*time.Second, func(world) bool { return c.nodeStatus(id) == client.NodeDown })
}

// settle lets d of fake time pass, waits for the bubble to be idle and
// returns the store.
func (c *cluster) settle(d time.Duration) world {
	time.Sleep(d)
	synctest.Wait()
	return c.world()
}

// waitingEvents are the `replica waiting` events, as "web.2: message".
func waitingEvents(w world) []string {
	var out []string
	for _, ev := range w.events {
		if ev.Action == "waiting" {
			out = append(out, ev.Replica+": "+ev.Message)
		}
	}
	return out
}

func (c *cluster) setNode(id string, edit func(*client.Node)) {
	c.t.Helper()
	key := store.NodeKey(id)
	var n client.Node
	rev, err := store.GetJSON(c.ctx, c.st, key, &n)
	if err != nil {
		c.t.Fatal(err)
	}
	edit(&n)
	if _, err := c.st.Txn(c.ctx, []store.Cmp{store.ModRevisionIs(key, rev)}, store.Put(key, store.Encode(n))); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) nodeStatus(id string) string {
	var n client.Node
	store.GetJSON(c.ctx, c.st, store.NodeKey(id), &n)
	return n.Status
}

// placement is "node:count" of the running tasks of service, sorted.
func placement(w world, service string) string {
	count := map[string]int{}
	for _, t := range w.running(service) {
		count[t.Node]++
	}
	var out []string
	for n, k := range count {
		out = append(out, fmt.Sprintf("%s:%d", n, k))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func onNode(w world, service, node string) []store.TaskRecord {
	var out []store.TaskRecord
	for _, t := range w.tasks {
		if t.Service == service && t.Node == node {
			out = append(out, t)
		}
	}
	return out
}

func spreadMax(s *client.ServiceSpec) { s.Ruche.Spread = client.SpreadMaxAvailability }

func TestNodeDownReplacedThenBackStopsSurplus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		c.deploy(web("app:1", 3, spreadMax))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		if got := placement(w, "web"); got != "n1:1 n2:1 n3:1" {
			t.Fatalf("placement: got %q, want one per node", got)
		}
		old := onNode(w, "web", "n2")[0]
		// Never more than 3 wanted running: the replacement is written with
		// the old one's shutdown, and only once.
		over := c.observe(func(w world) string {
			if n := len(w.running("web")); n > 3 {
				return fmt.Sprintf("%d replicas wanted running", n)
			}
			return ""
		})
		c.kill("n2")
		// Down after 5s of silence, replaced on n1 or n3 at once.
		w = c.waitFor("web.2 replaced off n2", 15*time.Second, func(w world) bool {
			return w.ready("web") == 3 && len(onNode(w, "web", "n2")) == 1 && onNode(w, "web", "n2")[0].DesiredState == client.DesiredShutdown
		})
		if got := c.nodeStatus("n2"); got != client.NodeDown {
			t.Fatalf("n2 status: got %q, want down", got)
		}
		if got := placement(w, "web"); strings.Contains(got, "n2") || len(w.running("web")) != 3 {
			t.Fatalf("placement after n2 died: got %q", got)
		}
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
			t.Errorf("status: got %s, want completed (a replacement is not a rollout)", st.State)
		}
		// n2 comes back: its old replica, told to shut down, goes away.
		c.start("n2")
		w = c.waitFor("old web.2 gone from n2", 15*time.Second, func(w world) bool {
			_, there := w.tasks[old.ID]
			return !there && c.nodeStatus("n2") == client.NodeReady
		})
		if got := w.ready("web"); got != 3 {
			t.Errorf("ready after n2 came back: got %d, want 3", got)
		}
		over.check(t)
	})
}

func TestNodeDownVolumeBoundWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		vol := func(s *client.ServiceSpec) {
			s.Mounts = []client.MountSpec{{Type: client.MountVolume, Source: "data", Target: "/data"}}
		}
		c.deploy(web("app:1", 3, spreadMax, vol))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		bound := onNode(w, "web", "n2")[0]
		c.down("n2")
		w = c.settle(30 * time.Second)
		if got := w.tasks[bound.ID]; got.DesiredState != client.DesiredRunning {
			t.Fatalf("volume-bound replica on the down node: got %s, want it kept running", got.DesiredState)
		}
		if got := len(w.running("web")); got != 3 {
			t.Fatalf("running: got %d, want 3 (no replacement for the bound one)", got)
		}
		waits := waitingEvents(w)
		if want := bound.Name() + ": " + bound.Name() + " waits for node n2 (down)"; len(waits) != 1 || !strings.HasPrefix(waits[0], want) {
			t.Errorf("waiting events: got %q, want one saying %q", waits, want)
		}
		// A rollout meanwhile keeps the slot on its node: the status says why.
		c.deploy(web("app:2", 3, spreadMax, vol))
		time.Sleep(30 * time.Second)
		synctest.Wait()
		w = c.world()
		if st := w.svcStatus["web"]; st.State != client.UpdateUpdating || !strings.Contains(st.Message, "n2") {
			t.Errorf("status during the update: got %s %q, want updating, saying it waits for n2", st.State, st.Message)
		}
		for _, r := range w.running("web") {
			if r.Slot == bound.Slot && r.ID != bound.ID {
				t.Fatalf("slot %d got %s on %s while its volume is on n2", r.Slot, r.ID, r.Node)
			}
		}
		if got := w.tasks[bound.ID]; got.DesiredState != client.DesiredRunning {
			t.Fatalf("bound replica during the update: got %s, want running (waiting)", got.DesiredState)
		}
		// The node comes back: the replica is updated where its volume is.
		c.start("n2")
		w = c.waitStatus("web", time.Minute, client.UpdateCompleted)
		if got := placement(w, "web"); got != "n1:1 n2:1 n3:1" {
			t.Fatalf("placement after n2 came back: got %q, want one per node", got)
		}
		for _, r := range onNode(w, "web", "n2") {
			if r.Slot != bound.Slot {
				t.Errorf("slot %d on n2, want slot %d (its volume)", r.Slot, bound.Slot)
			}
		}
	})
}

func TestNodeDownVolumeBoundForcedMove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		vol := func(s *client.ServiceSpec) {
			s.Mounts = []client.MountSpec{{Type: client.MountVolume, Source: "data", Target: "/data"}}
		}
		c.deploy(web("app:1", 3, spreadMax, vol))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		bound := onNode(w, "web", "n2")[0]
		c.down("n2")
		// What `ruche rebalance shop/web --force` writes.
		bound.Moving = "forced by ruche rebalance --force"
		c.put(store.TaskKey("n2", bound.ID), bound)
		w = c.waitFor("bound replica moved", 15*time.Second, func(w world) bool {
			return w.ready("web") == 3 && w.tasks[bound.ID].DesiredState == client.DesiredShutdown
		})
		if got := placement(w, "web"); strings.Contains(got, "n2") {
			t.Fatalf("placement: got %q, want nothing on n2", got)
		}
	})
}

func TestDrainMovesStartFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		c.deploy(web("app:1", 4))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		onN2 := len(onNode(w, "web", "n2"))
		if onN2 == 0 {
			t.Fatalf("nothing on n2 to drain: %s", placement(w, "web"))
		}
		// From now on, never fewer than 4 ready, never more than 4 + 1
		// running (parallelism 1).
		o := c.observe(func(w world) string {
			if n := w.ready("web"); n < 4 {
				return fmt.Sprintf("%d ready, want >= 4", n)
			}
			if n := len(w.running("web")); n > 5 {
				return fmt.Sprintf("%d running, want <= 5", n)
			}
			return ""
		})
		c.setNode("n2", func(n *client.Node) { n.Availability = client.AvailabilityDrain })
		w = c.waitFor("n2 drained", time.Minute, func(w world) bool {
			return len(onNode(w, "web", "n2")) == 0 && w.ready("web") == 4 && len(w.running("web")) == 4
		})
		o.check(t)
		if st := w.svcStatus["web"]; st.State != client.UpdateCompleted {
			t.Errorf("status: got %s, want completed", st.State)
		}
		var shut int
		for _, ev := range w.events {
			if ev.Action == "shutdown" && strings.Contains(ev.Message, "node drained") {
				shut++
			}
		}
		if shut != onN2 {
			t.Errorf("drain shutdown events: got %d, want %d", shut, onN2)
		}
		// activate: nothing moves back.
		c.setNode("n2", func(n *client.Node) { n.Availability = client.AvailabilityActive })
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := onNode(c.world(), "web", "n2"); len(got) != 0 {
			t.Errorf("replicas moved back to n2 after activate: %d", len(got))
		}
	})
}

func TestMovingReplicaMovesElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		c.deploy(web("app:1", 2))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		r := w.running("web")[0]
		o := c.observe(func(w world) string {
			if n := w.ready("web"); n < 2 {
				return fmt.Sprintf("%d ready, want >= 2", n)
			}
			return ""
		})
		r.Moving = "rebalance: test"
		c.put(store.TaskKey(r.Node, r.ID), r)
		w = c.waitFor("moved", 30*time.Second, func(w world) bool {
			_, there := w.tasks[r.ID]
			return !there && w.ready("web") == 2
		})
		o.check(t)
		for _, x := range w.running("web") {
			if x.Slot == r.Slot && x.Node == r.Node {
				t.Errorf("slot %d moved back onto %s", r.Slot, r.Node)
			}
		}
	})
}

// Two replicas marked Moving move one after the other (parallelism 1):
// never more than N + 1 running, never fewer than N ready.
func TestMovesOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		c.deploy(web("app:1", 3, spreadMax))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		o := c.observe(func(w world) string {
			if n := len(w.running("web")); n > 4 {
				return fmt.Sprintf("%d running, want <= 4", n)
			}
			if n := w.ready("web"); n < 3 {
				return fmt.Sprintf("%d ready, want >= 3", n)
			}
			return ""
		})
		moved := w.running("web")[:2]
		for _, r := range moved {
			r.Moving = "rebalance: test"
			c.put(store.TaskKey(r.Node, r.ID), r)
		}
		c.waitFor("both moved", time.Minute, func(w world) bool {
			for _, r := range moved {
				if _, there := w.tasks[r.ID]; there {
					return false
				}
			}
			return w.ready("web") == 3 && len(w.running("web")) == 3
		})
		o.check(t)
	})
}

// Draining a node leaves a volume-bound replica where its data is, and
// says so once.
func TestDrainKeepsVolumeBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		vol := func(s *client.ServiceSpec) {
			s.Mounts = []client.MountSpec{{Type: client.MountVolume, Source: "data", Target: "/data"}}
		}
		c.deploy(web("app:1", 3, spreadMax, vol))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		bound := onNode(w, "web", "n2")[0]
		c.setNode("n2", func(n *client.Node) { n.Availability = client.AvailabilityDrain })
		time.Sleep(30 * time.Second)
		synctest.Wait()
		w = c.world()
		if got := w.tasks[bound.ID]; got.DesiredState != client.DesiredRunning || len(w.running("web")) != 3 {
			t.Fatalf("bound replica on the drained node: got %s with %d running, want it kept", got.DesiredState, len(w.running("web")))
		}
		n := 0
		for _, ev := range w.events {
			if ev.Action == "waiting" && strings.Contains(ev.Message, "stays on drained node n2") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("waiting events: got %d, want 1", n)
		}
	})
}

// A node whose record is gone (removed) has its replicas replaced, even
// those with a named volume (the volume went with the node).
func TestRemovedNodeReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		vol := func(s *client.ServiceSpec) {
			s.Mounts = []client.MountSpec{{Type: client.MountVolume, Source: "data", Target: "/data"}}
		}
		c.deploy(web("app:1", 3, spreadMax, vol))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		gone := onNode(w, "web", "n3")[0]
		c.kill("n3")
		if _, err := c.st.Txn(c.ctx, nil, store.Delete(store.NodeKey("n3"))); err != nil {
			t.Fatal(err)
		}
		w = c.waitFor("n3's replica replaced", 15*time.Second, func(w world) bool {
			return w.ready("web") == 3 && w.tasks[gone.ID].DesiredState == client.DesiredShutdown
		})
		if got := placement(w, "web"); strings.Contains(got, "n3") {
			t.Errorf("placement: got %q, want nothing on n3", got)
		}
	})
}

// A node dies in the middle of a start-first update: the update goes on
// on the other nodes and completes.
func TestNodeDownDuringUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(map[string][]step{"app:2": becomesReady(3 * time.Second)}))
		defer c.close()
		c.deploy(web("app:1", 3, spreadMax))
		c.waitStatus("web", time.Minute, client.UpdateCompleted)
		c.deploy(web("app:2", 3, spreadMax, update(client.UpdateConfig{Order: client.OrderStartFirst, Monitor: client.Duration(time.Second)})))
		time.Sleep(2 * time.Second)
		c.kill("n2")
		w := c.waitStatus("web", 2*time.Minute, client.UpdateCompleted)
		if got := w.ready("web"); got != 3 {
			t.Errorf("ready: got %d, want 3", got)
		}
		for _, r := range w.running("web") {
			if r.Node == "n2" || r.Version != 2 {
				t.Errorf("%s on %s at version %d, want version 2 off n2", r.Replica.Name(), r.Node, r.Version)
			}
		}
	})
}

// A down node's replica that no other node can run (its host port is taken
// everywhere else) stays where it is, and a `replica waiting` event says
// why, once: not a silent "completed" with a replica missing.
func TestNodeDownNoNodeSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		port := func(s *client.ServiceSpec) {
			s.Ports = []client.PortSpec{{Target: 80, Published: 8080, Protocol: "tcp"}}
		}
		c.deploy(web("app:1", 3, port))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		stuck := onNode(w, "web", "n2")[0]
		c.down("n2")
		w = c.settle(30 * time.Second)
		if got := w.tasks[stuck.ID].DesiredState; got != client.DesiredRunning || len(w.running("web")) != 3 {
			t.Fatalf("replica of the down node: got %s with %d running, want it kept (nowhere to go)", got, len(w.running("web")))
		}
		waits := waitingEvents(w)
		want := stuck.Name() + ": " + stuck.Name() + " cannot be replaced (node n2 is down): no node can run shop/" + stuck.Name() + ": "
		if len(waits) != 1 || !strings.HasPrefix(waits[0], want) || !strings.Contains(waits[0], "host port 8080/tcp in use") {
			t.Fatalf("waiting events: got %q, want one starting %q and naming the port", waits, want)
		}
		// The node comes back: the replica runs on where it was.
		c.start("n2")
		c.waitFor("web ready on n2 again", 15*time.Second, func(w world) bool {
			return w.ready("web") == 3 && w.tasks[stuck.ID].DesiredState == client.DesiredRunning
		})
	})
}

// A label change moves no running replica (nodes/README.md): the
// replicas of a node that no longer matches their constraint run on
// there, and the next version is placed by the new labels.
func TestLabelChangeMovesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(nil))
		defer c.close()
		zoneA := func(s *client.ServiceSpec) { s.Placement.Constraints = []string{"node.labels.zone == a"} }
		c.setNode("n2", func(n *client.Node) { n.Labels = map[string]string{"zone": "a"} })
		c.deploy(web("app:1", 2, zoneA))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		if got := placement(w, "web"); got != "n2:2" {
			t.Fatalf("placement: got %q, want n2:2", got)
		}
		c.setNode("n2", func(n *client.Node) { n.Labels = map[string]string{"zone": "b"} })
		c.setNode("n3", func(n *client.Node) { n.Labels = map[string]string{"zone": "a"} })
		if got := placement(c.settle(30*time.Second), "web"); got != "n2:2" {
			t.Fatalf("placement after the label change: got %q, want n2:2 (nothing moves)", got)
		}
		c.deploy(web("app:2", 2, zoneA))
		w = c.waitFor("version 2 completed", time.Minute, func(w world) bool {
			st := w.svcStatus["web"]
			return st.Version == 2 && st.State == client.UpdateCompleted
		})
		if got := placement(w, "web"); got != "n3:2" {
			t.Fatalf("placement of version 2: got %q, want n3:2", got)
		}
	})
}

// A failed replica that no node can run any more (its node's labels
// changed since it was placed) says why it is not replaced, as a down
// node's replica does.
func TestFailedNoNodeSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, byImage(map[string][]step{"app:fails": append(becomesReady(time.Second),
			step{20 * time.Second, client.ReplicaStatus{State: client.StateFailed, ExitCode: 1, Message: "exited with code 1"}})}))
		defer c.close()
		zoneA := func(s *client.ServiceSpec) { s.Placement.Constraints = []string{"node.labels.zone == a"} }
		c.setNode("n2", func(n *client.Node) { n.Labels = map[string]string{"zone": "a"} })
		c.deploy(web("app:fails", 1, zoneA))
		w := c.waitStatus("web", time.Minute, client.UpdateCompleted)
		failing := onNode(w, "web", "n2")[0]
		c.setNode("n2", func(n *client.Node) { n.Labels = map[string]string{"zone": "b"} })
		w = c.settle(time.Minute)
		waits := waitingEvents(w)
		want := failing.Name() + ": " + failing.Name() + " cannot be replaced ("
		if len(waits) != 1 || !strings.HasPrefix(waits[0], want) || !strings.Contains(waits[0], "no node can run shop/") {
			t.Fatalf("waiting events: got %q, want one starting %q and saying no node can run it", waits, want)
		}
	})
}
