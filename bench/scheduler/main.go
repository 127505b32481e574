// Command scheduler is the scheduler-at-scale benchmark of issue 4 (see
// bench/README.md): the real embedded etcd, the real controller (and so the
// real scheduler), simulated nodes and fake agents that report every task
// they are given as running, without Docker.
//
// It registers -nodes node records, starts the controller as `ruche up`
// does, writes -services services summing to -replicas replicas through the
// store, and measures:
//
//   - placements/s: tasks created / (last task seen - start of the
//     services' write), the last task as seen by a watch on the tasks
//     prefix; and first_to_last_per_s, tasks created / (last task seen -
//     first task seen), the figure of the runs before 2026-11-22 15:00,
//     which over-states the rate when the watch delivers the tasks in a
//     burst (it did once the controller's commits overlapped: first task
//     seen 9.5 s after the write, the last 5 s later);
//   - placement latency: for each task, the time from the return of its
//     service's write to the moment the watch delivered the task (so it
//     includes the watch's delivery, as an agent would see it);
//   - RSS of this process (etcd, controller, fake agents and this
//     watcher together), sampled every 250 ms: the largest sample and
//     VmHWM.
//
// -rate 0 writes every service at once (throughput); -rate R writes R
// services a second (latency: placements are not queued behind 100,000
// others).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/controller"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/store"
)

type config struct {
	nodes, replicas, services int
	rate                      float64
	perProject                int
	timeout                   time.Duration
	dir                       string
	reporters                 int
	noEvents                  bool
	noReport                  bool
	label                     string
	maxTxnOps                 int
	cpuprofile                string
}

func main() {
	var c config
	flag.IntVar(&c.nodes, "nodes", 5000, "simulated nodes")
	flag.IntVar(&c.replicas, "replicas", 100000, "replicas in total")
	flag.IntVar(&c.services, "services", 100, "services (replicas are split evenly)")
	flag.IntVar(&c.perProject, "per-project", 10, "services per project")
	flag.Float64Var(&c.rate, "rate", 0, "services written per second (0: all at once)")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "give up after")
	flag.StringVar(&c.dir, "dir", "", "data dir for etcd and logs (default: a new temp dir, removed)")
	flag.IntVar(&c.reporters, "reporters", 16, "concurrent status writers of the fake agents")
	flag.BoolVar(&c.noReport, "no-report", false, "fake agents do not report their replicas running (isolates placement from status traffic)")
	flag.BoolVar(&c.noEvents, "no-events", false, "run the controller without an event recorder")
	flag.StringVar(&c.label, "label", "", "name of the run in the output")
	flag.IntVar(&c.maxTxnOps, "max-txn-ops", 1000, "controller.Config.MaxTxnOps (1000 as `ruche up` on its embedded etcd; 0: the controller's default of 100, for an external etcd)")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scheduler:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	dir := c.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ruche-bench-sched-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "controller.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn}))

	rss := startRSS(ctx)
	st, err := store.StartEmbedded(store.EmbeddedConfig{
		Dir: filepath.Join(dir, "etcd"), ClientAddr: "127.0.0.1:" + ports[0], PeerAddr: "127.0.0.1:" + ports[1],
	})
	if err != nil {
		return err
	}
	defer st.Close()

	nodes := makeNodes(c.nodes)
	if err := registerNodes(ctx, st, nodes); err != nil {
		return err
	}
	_, rev, err := st.List(ctx, store.NodesPrefix)
	if err != nil {
		return err
	}

	// The watch that measures, then the fake agents, then the controller.
	total := (c.replicas / c.services) * c.services
	obs := newObserver(total)
	var wg sync.WaitGroup
	wg.Go(func() { obs.watch(ctx, st, rev+1) })
	ag := newAgents(st, c.reporters)
	if !c.noReport {
		ag.start(ctx, &wg, nodes, rev+1)
	}

	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var rec *events.Recorder
	if !c.noEvents {
		rec = events.NewRecorder(st, log)
	}
	ctl := controller.New(controller.Config{MaxTxnOps: c.maxTxnOps}, controller.Deps{Store: st, Log: log, Metrics: prometheus.NewRegistry(), Events: rec})
	ctlCtx, stopCtl := context.WithCancel(ctx)
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- ctl.Run(ctlCtx) }()

	start := time.Now()
	if err := deploy(ctx, st, c, obs); err != nil {
		stopCtl()
		return err
	}
	wrote := time.Since(start)
	select {
	case <-obs.done:
	case <-ctx.Done():
		stopCtl()
		return fmt.Errorf("timed out with %d of %d tasks created, %d reported running", obs.created.Load(), total, ag.reported.Load())
	}
	placedAt := time.Now()
	// Wait for the fake agents' reports to land, for the RSS of a
	// converged cluster (bounded: the figure that matters is above).
	for !c.noReport && ag.reported.Load() < int64(total) && time.Since(placedAt) < 2*time.Minute && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	runningAt := time.Now()
	time.Sleep(2 * time.Second) // let the controller take in the last reports
	peak, hwm, last := rss.stop()
	check, err := verify(ctx, st, c, nodes)
	if err != nil {
		stopCtl()
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	size, _ := st.DBSize()
	stopCtl()
	<-ctlDone
	// The watches of the fake agents are not waited for: cancelling
	// thousands of watches of the in-process etcd client can take minutes,
	// and the process ends here anyway.
	defer cancel()

	lat := obs.latencies()
	first, lastTask := obs.span()
	span := lastTask.Sub(first)
	name := c.label
	if name == "" {
		name = fmt.Sprintf("%d nodes, %d replicas", c.nodes, total)
	}
	fmt.Printf("run\t%s\n", name)
	fmt.Printf("nodes\t%d\nservices\t%d\nreplicas\t%d\nrate\t%g\nevents\t%v\n", c.nodes, c.services, total, c.rate, !c.noEvents)
	fmt.Printf("max_txn_ops\t%d\n", c.maxTxnOps)
	fmt.Printf("deploy_written_s\t%.3f\n", wrote.Seconds())
	fmt.Printf("first_to_last_task_s\t%.3f\n", span.Seconds())
	fmt.Printf("placements_per_s\t%.0f\n", float64(total)/lastTask.Sub(start).Seconds())
	fmt.Printf("first_to_last_per_s\t%.0f\n", float64(total)/span.Seconds())
	fmt.Printf("start_to_last_task_s\t%.3f\n", lastTask.Sub(start).Seconds())
	fmt.Printf("all_running_s\t%.3f\t(%d of %d reported)\n", runningAt.Sub(start).Seconds(), ag.reported.Load(), total)
	fmt.Printf("latency_p50_ms\t%.1f\n", ms1(pct(lat, 0.50)))
	fmt.Printf("latency_p99_ms\t%.1f\n", ms1(pct(lat, 0.99)))
	fmt.Printf("latency_max_ms\t%.1f\n", ms1(pct(lat, 1)))
	fmt.Printf("tasks_shutdown\t%d\t%s\n", len(check.shutdown), strings.Join(firstN(check.shutdown, 5), "; "))
	fmt.Printf("tasks\t%d\nviolations\t%d\t%s\n", check.tasks, len(check.problems), strings.Join(firstN(check.problems, 5), "; "))
	fmt.Printf("rss_peak_mib\t%.1f\nrss_hwm_mib\t%.1f\nrss_end_mib\t%.1f\n", mib(peak), mib(hwm), mib(last))
	fmt.Printf("go_heap_inuse_mib\t%.1f\n", mib(int64(ms.HeapInuse)))
	fmt.Printf("etcd_db_mib\t%.1f\n", mib(size))
	return nil
}

func ms1(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mib(b int64) float64         { return float64(b) / (1 << 20) }

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func freePorts(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return out, nil
}

// makeNodes returns n ready nodes of 8 CPUs and 16 GiB in three zones.
func makeNodes(n int) []client.Node {
	out := make([]client.Node, n)
	for i := range out {
		id := fmt.Sprintf("sim-%05d", i)
		out[i] = client.Node{
			ID: id, Hostname: id, Role: "agent", Status: "ready", Availability: "active",
			Labels:    map[string]string{"zone": []string{"home", "cloud", "school"}[i%3]},
			Capacity:  client.ResourceAmounts{CPUs: 8, Memory: 16 << 30},
			UpdatedAt: time.Now(),
		}
	}
	return out
}

func registerNodes(ctx context.Context, st store.Store, nodes []client.Node) error {
	for b := range slices.Chunk(nodes, 500) {
		ops := make([]store.Op, 0, len(b))
		for _, n := range b {
			ops = append(ops, store.Put(store.NodeKey(n.ID), store.Encode(n)))
		}
		if _, err := st.Txn(ctx, nil, ops...); err != nil {
			return fmt.Errorf("register nodes: %w", err)
		}
	}
	return nil
}

// spec is service i: a mix like the scheduler's own benchmark: plain, a
// label constraint, hard spread, a published host port.
func spec(i, replicas int) client.ServiceSpec {
	s := client.ServiceSpec{
		Name: fmt.Sprintf("svc%03d", i), Image: "bench:latest", Replicas: replicas,
		Resources: client.Resources{Reservations: client.ResourceAmounts{CPUs: 0.05, Memory: 64 << 20}},
	}
	switch i % 4 {
	case 1:
		s.Placement.Constraints = []string{"node.labels.zone != school"}
	case 2:
		s.Ruche.Spread = client.SpreadMaxAvailability
	case 3:
		s.Ports = []client.PortSpec{{Target: 80, Published: uint16(20000 + i), Protocol: "tcp"}}
	}
	return s
}

// deploy writes the projects and services as the API's deploy does (one
// transaction per project: the project record and its service records),
// all at once or at c.rate services a second (then one project per
// service).
func deploy(ctx context.Context, st store.Store, c config, obs *observer) error {
	per := c.replicas / c.services
	group := c.perProject
	if c.rate > 0 {
		group = 1
	}
	var tick *time.Ticker
	if c.rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / c.rate))
		defer tick.Stop()
	}
	now := time.Now().UTC()
	for first := 0; first < c.services; first += group {
		if tick != nil && first > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		proj := fmt.Sprintf("p%03d", first/group)
		ops := []store.Op{store.Put(store.ProjectKey(proj), store.Encode(store.ProjectRecord{Name: proj, CreatedAt: now, UpdatedAt: now}))}
		var names []string
		for i := first; i < min(first+group, c.services); i++ {
			s := spec(i, per)
			ops = append(ops, store.Put(store.ServiceKey(proj, s.Name), store.Encode(store.ServiceRecord{Spec: s, Version: 1, UpdatedAt: now})))
			names = append(names, proj+"/"+s.Name)
		}
		if _, err := st.Txn(ctx, []store.Cmp{store.ModRevisionIs(store.ProjectKey(proj), 0)}, ops...); err != nil {
			return fmt.Errorf("deploy %s: %w", proj, err)
		}
		obs.written(names, time.Now())
	}
	return nil
}

// observer watches the tasks prefix: when each task was first seen, and
// how long after its service was written.
type observer struct {
	total   int
	created atomic.Int64
	done    chan struct{}

	mu      sync.Mutex
	wroteAt map[string]time.Time // "project/service" -> when its write returned
	pending map[string][]time.Time
	lat     []time.Duration
	seen    map[string]bool
	first   time.Time
	last    time.Time
}

func newObserver(total int) *observer {
	return &observer{total: total, done: make(chan struct{}), wroteAt: map[string]time.Time{},
		pending: map[string][]time.Time{}, seen: map[string]bool{}}
}

func (o *observer) written(services []string, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range services {
		o.wroteAt[s] = at
		// Tasks seen before the write returned (the controller can be
		// faster than the Txn's reply): latency counted from the return.
		for _, t := range o.pending[s] {
			o.lat = append(o.lat, max(t.Sub(at), 0))
		}
		delete(o.pending, s)
	}
}

func (o *observer) watch(ctx context.Context, st store.Store, from int64) {
	for resp := range st.Watch(ctx, store.TasksPrefix, from) {
		if resp.Err != nil {
			fmt.Fprintln(os.Stderr, "bench/scheduler: tasks watch:", resp.Err)
			return
		}
		now := time.Now()
		o.mu.Lock()
		for _, ev := range resp.Events {
			if ev.Type != store.EventPut || ev.KV.CreateRevision != ev.KV.ModRevision || o.seen[ev.KV.Key] {
				continue
			}
			o.seen[ev.KV.Key] = true
			_, id, _ := store.SplitTask(ev.KV.Key)
			svc := serviceOfTask(id)
			if at, ok := o.wroteAt[svc]; ok {
				o.lat = append(o.lat, now.Sub(at))
			} else {
				o.pending[svc] = append(o.pending[svc], now)
			}
			if o.first.IsZero() {
				o.first = now
			}
			o.last = now
			if o.created.Add(1) == int64(o.total) {
				close(o.done)
			}
		}
		o.mu.Unlock()
	}
}

// serviceOfTask reads "project/service" from a task ID; IDs are
// "<project>.<service>.<slot>.<random>" (controller/ids.go).
func serviceOfTask(id string) string {
	parts := strings.Split(id, ".")
	if len(parts) < 3 {
		return id
	}
	return parts[0] + "/" + parts[1]
}

func (o *observer) latencies() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := slices.Clone(o.lat)
	slices.Sort(out)
	return out
}

func (o *observer) span() (time.Time, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.first, o.last
}

// agents are the fake agents: one watch per simulated node on its tasks
// prefix, as a real agent has; every new task is reported running by a
// pool of status writers (one status per transaction, as agents write
// them).
type agents struct {
	st        store.Store
	reporters int
	queue     chan string // task IDs
	reported  atomic.Int64
}

func newAgents(st store.Store, reporters int) *agents {
	return &agents{st: st, reporters: max(reporters, 1), queue: make(chan string, 1<<16)}
}

func (a *agents) start(ctx context.Context, wg *sync.WaitGroup, nodes []client.Node, from int64) {
	for _, n := range nodes {
		wg.Go(func() { a.agent(ctx, n.ID, from) })
	}
	for range a.reporters {
		wg.Go(func() { a.report(ctx) })
	}
}

func (a *agents) agent(ctx context.Context, node string, from int64) {
	for resp := range a.st.Watch(ctx, store.NodeTasksPrefix(node), from) {
		if resp.Err != nil {
			if !errors.Is(resp.Err, context.Canceled) && ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "bench/scheduler: agent watch:", node, resp.Err)
			}
			return
		}
		for _, ev := range resp.Events {
			if ev.Type != store.EventPut || ev.KV.CreateRevision != ev.KV.ModRevision {
				continue
			}
			// A task is created with desired state running (only its
			// updates shut it down): its key says all the fake runtime
			// needs.
			_, id, _ := store.SplitTask(ev.KV.Key)
			select {
			case a.queue <- id:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (a *agents) report(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-a.queue:
			now := time.Now()
			st := client.ReplicaStatus{State: client.StateRunning, Ready: true, ContainerID: "fake-" + id, StartedAt: now, UpdatedAt: now}
			if _, err := a.st.Txn(ctx, nil, store.Put(store.TaskStatusKey(id), store.Encode(st))); err != nil {
				if ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "bench/scheduler: report:", err)
				}
				continue
			}
			a.reported.Add(1)
		}
	}
}
