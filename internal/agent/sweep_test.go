package agent

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
)

// A project network the node no longer uses goes once it has been idle
// long enough; one still in use, one whose project has a container on the
// engine, and one of another cluster stay.
func TestSweepUnusedNetworks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newFakeRuntime(testImage)
		h := newHarness(t, rt)
		h.cluster = "c1"
		h.start()
		defer h.stop()
		ctx := context.Background()

		// Project p: its only replica here is taken away (moved to
		// another node, say), with no cleanup record.
		gone := task(1, "a1", client.ServiceSpec{})
		h.put(gone)
		h.waitState(gone.ID, client.StateRunning)
		// Project q: a replica keeps running here.
		kept := task(1, "b1", client.ServiceSpec{})
		kept.ID, kept.Project = "q.web.1.b1", "q"
		h.put(kept)
		h.waitState(kept.ID, client.StateRunning)
		// Project r: a container of another node on the same engine.
		other := map[string]string{runtime.LabelManaged: "true", runtime.LabelProject: "r", runtime.LabelCluster: "c1"}
		rt.EnsureNetwork(ctx, runtime.Network{Name: NetworkName("r", "default"), Labels: other})
		if _, err := rt.Create(ctx, runtime.ContainerSpec{Name: "r-web-1-x", Image: testImage, Labels: map[string]string{
			runtime.LabelManaged: "true", runtime.LabelProject: "r", runtime.LabelNode: "n2", runtime.LabelCluster: "c1",
		}}); err != nil {
			t.Fatal(err)
		}
		// Project s: another cluster's idle network.
		rt.EnsureNetwork(ctx, runtime.Network{Name: "ruche-s-default", Labels: map[string]string{
			runtime.LabelManaged: "true", runtime.LabelProject: "s", runtime.LabelCluster: "c2",
		}})
		// A network made before networks had the cluster label.
		rt.EnsureNetwork(ctx, runtime.Network{Name: "ruche-old-default", Labels: map[string]string{
			runtime.LabelManaged: "true", runtime.LabelProject: "old",
		}})

		h.del(gone)
		advance(time.Minute)
		if nets := netNames(rt); !slices.Contains(nets, NetworkName("p", "default")) {
			t.Fatalf("p's network went at once: %v (it must stay until idle for %v)", nets, 10*time.Minute)
		}
		advance(11 * time.Minute)
		want := []string{"ruche-old-default", NetworkName("q", "default"), NetworkName("r", "default"), "ruche-s-default"}
		if nets := netNames(rt); !slices.Equal(nets, want) {
			t.Errorf("networks after the idle time: got %v, want %v", nets, want)
		}
		// The node gets a replica of p again: its network comes back.
		again := task(2, "a2", client.ServiceSpec{})
		h.put(again)
		h.waitState(again.ID, client.StateRunning)
		if nets := netNames(rt); !slices.Contains(nets, NetworkName("p", "default")) {
			t.Errorf("p's network not made again: %v", nets)
		}
	})
}

func netNames(rt *fakeRuntime) []string {
	nets, _ := rt.Networks(context.Background(), nil)
	return runtime.NetworkNames(nets)
}
