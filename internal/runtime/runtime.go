// Package runtime is the seam between the agent and a container engine: the
// runtime-neutral types of a container request, of a container's observed
// state and of engine events, and the Runtime interface every driver
// implements. Drivers live in subpackages (runtime/docker); every driver must
// pass the conformance suite in runtime/runtimetest.
package runtime

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// Sentinel errors. Drivers wrap them so callers can use errors.Is.
var (
	// ErrNotFound: no such container, image, network or volume.
	ErrNotFound = errors.New("runtime: not found")
	// ErrPull: an image is not present and could not be pulled.
	ErrPull = errors.New("runtime: image pull failed")
)

// Labels every ruche container, network and volume carries.
const (
	LabelManaged = "ruche.managed" // "true"
	LabelProject = "ruche.project"
	LabelService = "ruche.service"
	LabelSlot    = "ruche.slot"
	LabelVersion = "ruche.version"
	LabelTask    = "ruche.task"
	LabelNode    = "ruche.node"
	// LabelCluster holds the cluster ID, so that two clusters sharing an
	// engine (tests, a demo beside a real one) never touch each other's
	// containers.
	LabelCluster = "ruche.cluster"
)

// Runtime is what the agent needs of a container engine. Containers are
// found again by their labels, so a restarted agent can adopt what runs.
// Every method is safe for concurrent use.
type Runtime interface {
	// Info describes the engine's machine, for the node's capacity.
	Info(ctx context.Context) (Info, error)

	// ImagePresent reports whether ref is in the engine's image store.
	ImagePresent(ctx context.Context, ref string) (bool, error)
	// PullImage pulls ref, calling progress (if non-nil) with short
	// human-readable progress lines. Errors wrap ErrPull.
	PullImage(ctx context.Context, ref string, progress func(string)) error
	// ImageCommand returns the entrypoint and command of an image in the
	// engine's store, or an error wrapping ErrNotFound.
	ImageCommand(ctx context.Context, ref string) (entrypoint, cmd []string, err error)

	// EnsureNetwork creates the network if no network of that name
	// exists. It is idempotent. A driver may remember the networks it
	// ensured and not ask the engine again; after a Create or Start that
	// failed with ErrNotFound (a network removed behind its back), it asks
	// again.
	EnsureNetwork(ctx context.Context, n Network) error
	// RemoveNetwork removes a network; an absent network is not an error.
	RemoveNetwork(ctx context.Context, name string) error
	// Networks lists the networks carrying every label of labels, sorted
	// by name.
	Networks(ctx context.Context, labels map[string]string) ([]NetworkInfo, error)
	// EnsureVolume creates the volume if absent. It is idempotent.
	EnsureVolume(ctx context.Context, v Volume) error
	// RemoveVolume removes a volume; an absent volume is not an error.
	RemoveVolume(ctx context.Context, name string) error
	// Volumes lists the names of the volumes carrying every label of labels.
	Volumes(ctx context.Context, labels map[string]string) ([]string, error)

	// Create creates (but does not start) a container and returns its ID.
	Create(ctx context.Context, spec ContainerSpec) (string, error)
	// Start starts a created or exited container.
	Start(ctx context.Context, id string) error
	// Stop sends signal (empty: the container's stop signal, SIGTERM by
	// default), waits up to grace, then kills. Stopping a stopped container
	// is not an error.
	Stop(ctx context.Context, id string, signal string, grace time.Duration) error
	// Remove removes a container (killing it if it runs) and its anonymous
	// volumes. An absent container is not an error.
	Remove(ctx context.Context, id string) error
	// Inspect returns a container's state, or an error wrapping ErrNotFound.
	Inspect(ctx context.Context, id string) (Container, error)
	// List returns every container, in any state, carrying every label of
	// labels.
	List(ctx context.Context, labels map[string]string) ([]Container, error)
	// ListSummaries is List without inspecting each container: only ID,
	// Name, Image, Labels, Status and Running are set. One engine request
	// however many containers match: for scans that need no more.
	ListSummaries(ctx context.Context, labels map[string]string) ([]Container, error)
	// Events streams container events of containers carrying every label
	// of labels, from now on, until ctx ends or the stream breaks; then the
	// error channel gets one error (nil never) and both stay open. Callers
	// resync after reconnecting: events may have been missed.
	Events(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error)
	// Logs copies a container's output, demultiplexed, to stdout and
	// stderr. With Follow it returns when the container stops or ctx ends.
	Logs(ctx context.Context, id string, opts LogOptions, stdout, stderr io.Writer) error
}

// Info describes an engine and its machine.
type Info struct {
	Name     string // the engine's host name
	Version  string // engine version
	NCPU     int
	MemTotal int64
}

// Network is a network to create.
type Network struct {
	Name     string
	Internal bool
	Labels   map[string]string
}

// NetworkInfo is a network as the engine reports it.
type NetworkInfo struct {
	Name    string
	Labels  map[string]string
	Created time.Time
}

// NetworkNames returns the names of nets, in their order.
func NetworkNames(nets []NetworkInfo) []string {
	names := make([]string, len(nets))
	for i, n := range nets {
		names[i] = n.Name
	}
	return names
}

// Volume is a named volume to create.
type Volume struct {
	Name       string
	Driver     string
	DriverOpts map[string]string
	Labels     map[string]string
}

// Mount is a mount of a container. For MountVolume, Source is the engine's
// volume name (empty: anonymous volume); for MountBind a host path; tmpfs
// mounts have no Source.
type Mount struct {
	Type     string // client.MountVolume, client.MountBind, client.MountTmpfs
	Source   string
	Target   string
	ReadOnly bool
}

// Attachment joins a container to a network under aliases.
type Attachment struct {
	Network string // the engine's network name
	Aliases []string
}

// ContainerSpec is a container to create. It is runtime-neutral: the agent
// fills it from a task, each driver maps it to its engine.
type ContainerSpec struct {
	Name       string
	Image      string
	Command    []string
	Entrypoint []string
	Env        []string // KEY=value, sorted
	Labels     map[string]string
	User       string
	WorkingDir string
	Hostname   string
	TTY        bool
	StdinOpen  bool
	Init       bool
	ReadOnly   bool
	CapAdd     []string
	CapDrop    []string
	ExtraHosts []string
	StopSignal string
	// StopGrace is the container's default stop timeout.
	StopGrace time.Duration
	Ports     []client.PortSpec
	Mounts    []Mount
	Networks  []Attachment
	// NoNetwork: the container gets no engine network (only loopback);
	// the agent wires it (privnet). Networks must then be empty.
	NoNetwork   bool
	DNS         []string // name servers for the container's resolv.conf
	DNSSearch   []string
	DNSOptions  []string
	Healthcheck *client.HealthcheckSpec
	NanoCPUs    int64
	Memory      int64
}

// Container states, as engines report them.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusRemoving   = "removing"
	StatusExited     = "exited"
	StatusDead       = "dead"
)

// Health states of a container with a healthcheck. Empty: no healthcheck.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Container is a container's observed state.
type Container struct {
	ID         string
	Name       string
	Image      string
	Labels     map[string]string
	Status     string // one of the Status* constants
	Running    bool
	ExitCode   int
	Error      string // the engine's error, when it could not start the container
	OOMKilled  bool
	Health     string // "" (no healthcheck), or one of the Health* constants
	StartedAt  time.Time
	FinishedAt time.Time
	Ports      []client.PortBinding
	Addresses  map[string]string // network name -> IPv4 address
	Pid        int               // the main process on the host, 0 when not running
}

// Event actions the agent reacts to.
const (
	EventStart   = "start"
	EventDie     = "die"
	EventHealth  = "health_status"
	EventOOM     = "oom"
	EventDestroy = "destroy"
)

// Event is something that happened to a container.
type Event struct {
	ContainerID string
	Action      string // one of the Event* constants
	Health      string // for EventHealth: the new health state
	Labels      map[string]string
	Time        time.Time
}

// LogOptions selects a container's output.
type LogOptions struct {
	Follow bool
	Since  time.Time // zero: from the start
	Tail   int       // 0: all lines
}
