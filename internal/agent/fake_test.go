package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
)

// fakeRuntime is an in-memory engine for the agent's unit tests. It uses
// only time and channels, so it runs inside a synctest bubble. Containers
// behave by their environment:
//
//	FAKE_EXIT_AFTER=<duration>  exit after running that long
//	FAKE_EXIT_CODE=<n>          with that code (default 1)
//	FAKE_UNHEALTHY=1            healthcheck fails
//	FAKE_LOG=<text>             what each run writes to stdout when it starts
//	                            (and "err line\n" to stderr)
//	FAKE_EXIT_LOG=<text>        what each run writes to stdout when it ends
//
// Its log stamps lines as Docker 20.10 does: when the engine copies them,
// which can be before the run's StartedAt (the engine records the start
// after the process runs) and after its FinishedAt (the last output is
// copied after the exit is recorded); the die event comes after the run's
// last line.
type fakeRuntime struct {
	mu         sync.Mutex
	nextID     int
	containers map[string]*fakeContainer
	images     map[string]bool // present
	pullable   map[string]bool
	networks   map[string]runtime.Network
	netCreated map[string]time.Time
	volumes    map[string]runtime.Volume
	subs       map[*fakeSub]bool
	stops      []fakeStop
	creates    int
	starts     int
	imageAsks  int // ImagePresent calls
	staleNets  int // EnsureNetwork calls that do nothing, as a driver that believes a removed network still exists
	// netsAtStart: networks are checked by Start (Docker 20.10), not by
	// Create (current Docker).
	netsAtStart bool
	startErr    error
	muted       bool          // events are lost
	logsHold    chan struct{} // non-nil: followed logs stall until it is closed
}

type fakeContainer struct {
	c       runtime.Container
	spec    runtime.ContainerSpec
	timer   *time.Timer
	gen     int // bumps on every start/stop so stale timers do nothing
	run     int // bumps on every start
	logs    []fakeLine
	changed chan struct{} // closed (and replaced) when logs or state change
}

// fakeLine is one line of a container's log.
type fakeLine struct {
	at     time.Time
	run    int
	stderr bool
	text   string
}

// How far the fake's log stamps stray from StartedAt and FinishedAt.
const (
	fakeStartSkew = 3 * time.Millisecond // a run's first lines, before StartedAt
	fakeExitSkew  = time.Millisecond     // a run's last lines, after FinishedAt
	fakeDieLag    = 2 * time.Millisecond // the die event, after FinishedAt
)

// write appends text to the container's log, a line per entry. f.mu is held.
func (fc *fakeContainer) write(at time.Time, stderr bool, text string) {
	for _, l := range strings.SplitAfter(text, "\n") {
		if l != "" {
			fc.logs = append(fc.logs, fakeLine{at: at, run: fc.run, stderr: stderr, text: l})
		}
	}
	fc.notify()
}

// notify wakes the followers of the container's log. f.mu is held.
func (fc *fakeContainer) notify() {
	close(fc.changed)
	fc.changed = make(chan struct{})
}

type fakeStop struct {
	id     string
	signal string
	grace  time.Duration
}

type fakeSub struct {
	labels map[string]string
	ch     chan runtime.Event
	errc   chan error
}

func newFakeRuntime(images ...string) *fakeRuntime {
	f := &fakeRuntime{
		containers: map[string]*fakeContainer{},
		images:     map[string]bool{},
		pullable:   map[string]bool{},
		networks:   map[string]runtime.Network{},
		netCreated: map[string]time.Time{},
		volumes:    map[string]runtime.Volume{},
		subs:       map[*fakeSub]bool{},
	}
	for _, i := range images {
		f.images[i] = true
	}
	return f
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func env(spec runtime.ContainerSpec, key string) string {
	for _, e := range spec.Env {
		if k, v, _ := strings.Cut(e, "="); k == key {
			return v
		}
	}
	return ""
}

// emit sends an event to matching subscribers. f.mu is held.
func (f *fakeRuntime) emit(fc *fakeContainer, action, health string) {
	f.emitAt(fc, action, health, time.Now())
}

func (f *fakeRuntime) emitAt(fc *fakeContainer, action, health string, at time.Time) {
	if f.muted {
		return
	}
	ev := runtime.Event{ContainerID: fc.c.ID, Action: action, Health: health, Labels: fc.c.Labels, Time: at}
	for s := range f.subs {
		if matches(ev.Labels, s.labels) {
			select {
			case s.ch <- ev:
			default: // a slow reader loses events, as with a real engine
			}
		}
	}
}

func (f *fakeRuntime) Info(ctx context.Context) (runtime.Info, error) {
	return runtime.Info{Name: "fake", Version: "1", NCPU: 2, MemTotal: 1 << 30}, nil
}

func (f *fakeRuntime) ImagePresent(ctx context.Context, ref string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.imageAsks++
	return f.images[ref], nil
}

func (f *fakeRuntime) PullImage(ctx context.Context, ref string, progress func(string)) error {
	f.mu.Lock()
	ok := f.pullable[ref]
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: image %s not found locally and could not be pulled: no such image", runtime.ErrPull, ref)
	}
	if progress != nil {
		progress("Downloading")
	}
	time.Sleep(time.Second)
	f.mu.Lock()
	f.images[ref] = true
	f.mu.Unlock()
	return nil
}

func (f *fakeRuntime) ImageCommand(ctx context.Context, ref string) ([]string, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.images[ref] {
		return nil, nil, fmt.Errorf("image %s: %w", ref, runtime.ErrNotFound)
	}
	return nil, []string{"/hello"}, nil
}

func (f *fakeRuntime) EnsureNetwork(ctx context.Context, n runtime.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.staleNets > 0 {
		f.staleNets--
		return nil
	}
	if _, ok := f.networks[n.Name]; !ok {
		f.networks[n.Name] = n
		f.netCreated[n.Name] = time.Now()
	}
	return nil
}

func (f *fakeRuntime) RemoveNetwork(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.networks, name)
	return nil
}

func (f *fakeRuntime) Networks(ctx context.Context, labels map[string]string) ([]runtime.NetworkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []runtime.NetworkInfo
	for name, n := range f.networks {
		if matches(n.Labels, labels) {
			out = append(out, runtime.NetworkInfo{Name: name, Labels: n.Labels, Created: f.netCreated[name]})
		}
	}
	slices.SortFunc(out, func(a, b runtime.NetworkInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeRuntime) EnsureVolume(ctx context.Context, v runtime.Volume) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.volumes[v.Name]; !ok {
		f.volumes[v.Name] = v
	}
	return nil
}

func (f *fakeRuntime) RemoveVolume(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.volumes, name)
	return nil
}

func (f *fakeRuntime) Volumes(ctx context.Context, labels map[string]string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for name, v := range f.volumes {
		if matches(v.Labels, labels) {
			out = append(out, name)
		}
	}
	return out, nil
}

func (f *fakeRuntime) Create(ctx context.Context, spec runtime.ContainerSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.images[spec.Image] {
		return "", fmt.Errorf("create: %w: no image %s", runtime.ErrNotFound, spec.Image)
	}
	if err := f.checkNetworks(spec, !f.netsAtStart); err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	for _, c := range f.containers {
		if c.c.Name == spec.Name {
			return "", fmt.Errorf("create: name %s in use", spec.Name)
		}
	}
	f.nextID++
	f.creates++
	id := fmt.Sprintf("c%03d", f.nextID)
	f.containers[id] = &fakeContainer{
		c:       runtime.Container{ID: id, Name: spec.Name, Image: spec.Image, Labels: spec.Labels, Status: runtime.StatusCreated},
		spec:    spec,
		changed: make(chan struct{}),
	}
	return id, nil
}

// addContainer puts a container in the engine as if a previous agent had
// created it.
func (f *fakeRuntime) addContainer(spec runtime.ContainerSpec, running bool) string {
	for _, a := range spec.Networks {
		_ = f.EnsureNetwork(context.Background(), runtime.Network{Name: a.Network})
	}
	id, err := f.Create(context.Background(), spec)
	if err != nil {
		panic(err)
	}
	if running {
		if err := f.Start(context.Background(), id); err != nil {
			panic(err)
		}
	}
	return id
}

// checkNetworks fails with ErrNotFound if check and a network of spec is
// missing. f.mu is held.
func (f *fakeRuntime) checkNetworks(spec runtime.ContainerSpec, check bool) error {
	for _, a := range spec.Networks {
		if _, ok := f.networks[a.Network]; check && !ok {
			return fmt.Errorf("%w: network %s not found", runtime.ErrNotFound, a.Network)
		}
	}
	return nil
}

func (f *fakeRuntime) Start(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("start: %w", runtime.ErrNotFound)
	}
	if err := f.checkNetworks(fc.spec, f.netsAtStart); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if f.startErr != nil {
		return f.startErr
	}
	if fc.c.Running {
		return nil
	}
	f.starts++
	fc.gen++
	gen := fc.gen
	fc.run++
	now := time.Now()
	fc.write(now.Add(-fakeStartSkew), false, env(fc.spec, "FAKE_LOG"))
	fc.write(now.Add(-fakeStartSkew), true, "err line\n")
	fc.c.Running, fc.c.Status, fc.c.StartedAt, fc.c.ExitCode = true, runtime.StatusRunning, now, 0
	fc.c.Pid = 1000 + f.starts // a new process per start
	fc.c.Health = ""
	fc.c.Ports = nil
	for i, p := range fc.spec.Ports {
		pub := p.Published
		if pub == 0 {
			pub = uint16(40000 + i)
		}
		host := p.HostIP
		if host == "" {
			host = "0.0.0.0"
		}
		fc.c.Ports = append(fc.c.Ports, client.PortBinding{Target: p.Target, Published: pub, Protocol: "tcp", HostIP: host})
	}
	fc.c.Addresses = map[string]string{}
	for i, n := range fc.spec.Networks {
		fc.c.Addresses[n.Network] = fmt.Sprintf("10.0.%d.%d", i, f.nextID)
	}
	f.emit(fc, runtime.EventStart, "")
	if hc := fc.spec.Healthcheck; hc != nil && !hc.Disable {
		fc.c.Health = runtime.HealthStarting
		time.AfterFunc(hc.Interval.D(), func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if fc.gen != gen {
				return
			}
			fc.c.Health = runtime.HealthHealthy
			if env(fc.spec, "FAKE_UNHEALTHY") == "1" {
				fc.c.Health = runtime.HealthUnhealthy
			}
			f.emit(fc, runtime.EventHealth, fc.c.Health)
		})
	}
	if d := env(fc.spec, "FAKE_EXIT_AFTER"); d != "" {
		after, _ := time.ParseDuration(d)
		code := 1
		fmt.Sscan(env(fc.spec, "FAKE_EXIT_CODE"), &code)
		fc.timer = time.AfterFunc(after, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if fc.gen == gen {
				f.exit(fc, code)
			}
		})
	}
	return nil
}

// exit stops a running container. f.mu is held.
func (f *fakeRuntime) exit(fc *fakeContainer, code int) {
	if !fc.c.Running {
		return
	}
	fc.gen++
	now := time.Now()
	fc.write(now.Add(fakeExitSkew), false, env(fc.spec, "FAKE_EXIT_LOG"))
	fc.c.Running, fc.c.Status, fc.c.ExitCode, fc.c.FinishedAt = false, runtime.StatusExited, code, now
	fc.c.Pid = 0
	fc.c.Health = ""
	fc.notify()
	f.emitAt(fc, runtime.EventDie, "", now.Add(fakeDieLag))
}

func (f *fakeRuntime) Stop(ctx context.Context, id string, signal string, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("stop: %w", runtime.ErrNotFound)
	}
	f.stops = append(f.stops, fakeStop{id, signal, grace})
	f.exit(fc, 0)
	return nil
}

func (f *fakeRuntime) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc, ok := f.containers[id]
	if !ok {
		return nil
	}
	f.exit(fc, 137)
	delete(f.containers, id)
	f.emit(fc, runtime.EventDestroy, "")
	return nil
}

func (f *fakeRuntime) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc, ok := f.containers[id]
	if !ok {
		return runtime.Container{}, fmt.Errorf("inspect: %w", runtime.ErrNotFound)
	}
	return fc.c, nil
}

func (f *fakeRuntime) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []runtime.Container
	for _, fc := range f.containers {
		if matches(fc.c.Labels, labels) {
			out = append(out, fc.c)
		}
	}
	return out, nil
}

func (f *fakeRuntime) ListSummaries(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	cs, err := f.List(ctx, labels)
	for i, c := range cs {
		cs[i] = runtime.Container{ID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, Status: c.Status, Running: c.Running}
	}
	return cs, err
}

func (f *fakeRuntime) Events(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error) {
	errc := make(chan error, 2)
	s := &fakeSub{labels: labels, ch: make(chan runtime.Event, 256), errc: errc}
	f.mu.Lock()
	f.subs[s] = true
	f.mu.Unlock()
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		delete(f.subs, s)
		f.mu.Unlock()
		errc <- ctx.Err()
	})
	return s.ch, errc
}

// mute loses every event until breakEvents.
func (f *fakeRuntime) mute() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.muted = true
}

// breakEvents ends every event stream, as a daemon restart would.
func (f *fakeRuntime) breakEvents() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.muted = false
	for s := range f.subs {
		delete(f.subs, s)
		s.errc <- errors.New("event stream broken")
	}
}

// Logs serves the container's log as Docker does: lines stamped at or
// after Since, the last Tail of them, and with Follow the lines to come
// until the run it attached to ends (or ctx does). While logsHold is open
// a followed stream stalls after its first lines, as a slow reader would.
func (f *fakeRuntime) Logs(ctx context.Context, id string, opts runtime.LogOptions, stdout, stderr io.Writer) error {
	f.mu.Lock()
	fc, ok := f.containers[id]
	hold := f.logsHold
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("logs: %w", runtime.ErrNotFound)
	}
	next, run := 0, 0
	for first := true; ; first = false {
		f.mu.Lock()
		if first {
			run = fc.run
		}
		var lines []fakeLine
		for _, l := range fc.logs[next:] {
			if !l.at.Before(opts.Since) && l.run <= run {
				lines = append(lines, l)
			}
		}
		if first && opts.Tail > 0 && len(lines) > opts.Tail {
			lines = lines[len(lines)-opts.Tail:]
		}
		next = len(fc.logs)
		attached, changed := fc.c.Running && fc.run == run, fc.changed
		f.mu.Unlock()
		for _, l := range lines {
			w := stdout
			if l.stderr {
				w = stderr
			}
			if _, err := io.WriteString(w, l.text); err != nil {
				return err
			}
		}
		if !opts.Follow || !attached {
			return nil
		}
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// container returns the container of a task, if any.
func (f *fakeRuntime) container(task string) (runtime.Container, runtime.ContainerSpec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fc := range f.containers {
		if fc.c.Labels[runtime.LabelTask] == task {
			return fc.c, fc.spec, true
		}
	}
	return runtime.Container{}, runtime.ContainerSpec{}, false
}

func (f *fakeRuntime) counts() (creates, starts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates, f.starts
}
