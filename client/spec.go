// Package client holds ruche's wire types and its Go API client.
//
// The types in this file describe desired state: what a user asks for. They are
// what the CLI sends to the API after loading a compose file, and what the
// manager stores. Status types (what is) live in status.go.
package client

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes as a Go duration string
// ("1m30s") in JSON, so specs stay readable in the store and on the wire.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string like \"5s\": %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ProjectSpec is one compose file, loaded and normalised: everything ruche
// needs to run a stack, with file references (env_file, secret and config
// files) already resolved by the loader.
type ProjectSpec struct {
	Name     string                 `json:"name"`
	Services map[string]ServiceSpec `json:"services"`
	Volumes  map[string]VolumeSpec  `json:"volumes,omitempty"`
	Networks map[string]NetworkSpec `json:"networks,omitempty"`
	// Secrets carry their content in a deploy request only; the manager
	// stores it encrypted and never returns it.
	Secrets map[string]SecretSpec `json:"secrets,omitempty"`
	Configs map[string]ConfigSpec `json:"configs,omitempty"`
}

// VolumeSpec is a named volume of a project. Named volumes are never removed
// unless the user asks for it (ruche rm --volumes).
type VolumeSpec struct {
	Name       string            `json:"name"`
	Driver     string            `json:"driver,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// External volumes are created by the user and only referenced.
	External bool `json:"external,omitempty"`
}

// NetworkSpec is a project network. Every project has at least "default".
type NetworkSpec struct {
	Name     string            `json:"name"`
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// SecretSpec is a secret's content. Data is set in requests only.
type SecretSpec struct {
	Name string `json:"name"`
	Data []byte `json:"data,omitempty"`
}

// ConfigSpec is a config's content, mounted as a file like a secret but
// stored in clear.
type ConfigSpec struct {
	Name string `json:"name"`
	Data []byte `json:"data,omitempty"`
}

// ServiceSpec is one service of a project. Everything but Replicas is the
// replica template: a change to it is a new version and a rolling update; a
// change of Replicas alone is a scale.
type ServiceSpec struct {
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Command     []string          `json:"command,omitempty"`
	Entrypoint  []string          `json:"entrypoint,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	User        string            `json:"user,omitempty"`
	WorkingDir  string            `json:"working_dir,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	TTY         bool              `json:"tty,omitempty"`
	StdinOpen   bool              `json:"stdin_open,omitempty"`
	Init        bool              `json:"init,omitempty"`
	ReadOnly    bool              `json:"read_only,omitempty"`
	CapAdd      []string          `json:"cap_add,omitempty"`
	CapDrop     []string          `json:"cap_drop,omitempty"`
	ExtraHosts  []string          `json:"extra_hosts,omitempty"`
	StopSignal  string            `json:"stop_signal,omitempty"`
	// StopGracePeriod is how long a replica gets between SIGTERM (or
	// StopSignal) and SIGKILL. Zero means the default, 10s.
	StopGracePeriod Duration `json:"stop_grace_period,omitempty"`

	Ports       []PortSpec                `json:"ports,omitempty"`
	Mounts      []MountSpec               `json:"mounts,omitempty"`
	Healthcheck *HealthcheckSpec          `json:"healthcheck,omitempty"`
	DependsOn   map[string]DependencySpec `json:"depends_on,omitempty"`
	Secrets     []FileRef                 `json:"secrets,omitempty"`
	Configs     []FileRef                 `json:"configs,omitempty"`
	// Networks maps a project network name to this service's attachment.
	// Empty means the project's "default" network.
	Networks map[string]ServiceNetwork `json:"networks,omitempty"`

	Replicas       int            `json:"replicas"`
	Resources      Resources      `json:"resources,omitempty"`
	RestartPolicy  RestartPolicy  `json:"restart_policy,omitempty"`
	UpdateConfig   UpdateConfig   `json:"update_config,omitempty"`
	RollbackConfig UpdateConfig   `json:"rollback_config,omitempty"`
	Placement      Placement      `json:"placement,omitempty"`
	Ruche          RucheExtension `json:"x-ruche,omitempty"`

	// Routes expose the service through the ingress proxy. They are not
	// part of the replica template: changing a route restarts no replica,
	// except in a cluster a route to a target port the replicas do not
	// publish yet (a rolling update: they publish it when created).
	Routes []RouteSpec `json:"routes,omitempty"`
}

// Template is the replica template of s: everything that, when it
// changes, needs new replicas (a rolling update). Replicas (a scale) and
// Routes (a proxy change) are left out.
func (s ServiceSpec) Template() []byte {
	s.Replicas = 0
	s.Routes = nil
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("client: marshal service spec: %v", err))
	}
	return b
}

// TLS modes of a route.
const (
	TLSAuto     = ""         // ACME when the platform has an ACME issuer, else plain HTTP
	TLSACME     = "acme"     // a certificate from the ACME issuer
	TLSInternal = "internal" // a certificate from the cluster's own CA
	TLSFiles    = "files"    // the certificate and key the user gave
	TLSNone     = "none"     // plain HTTP only
)

// RouteSpec sends the requests for Host (and, if set, paths under
// PathPrefix) to container port Port of the service's ready replicas.
type RouteSpec struct {
	Host       string `json:"host"`
	PathPrefix string `json:"path_prefix,omitempty"`
	Port       uint16 `json:"port"`
	TLS        string `json:"tls,omitempty"`
	// Cert and Key are PEM contents for TLSFiles, loaded by the CLI from
	// the files the compose file names; sent in requests, stored sealed,
	// never returned.
	Cert []byte `json:"cert,omitempty"`
	Key  []byte `json:"key,omitempty"`
	// Source says where the route came from, for messages:
	// "x-ruche.routes[0]", "label ruche.route", "traefik router web".
	Source string `json:"source,omitempty"`
}

// Claim is the host and path a route takes, as the proxy matches it: a
// trailing "/" of the path is dropped ("/api/" is "/api") and "/" is no
// path. Two routes with the same Claim are one route served twice.
func (r RouteSpec) Claim() string {
	return r.Host + strings.TrimRight(r.PathPrefix, "/")
}

// PortSpec publishes a container port on the node. Published 0 asks for an
// ephemeral host port.
type PortSpec struct {
	Target    uint16 `json:"target"`
	Published uint16 `json:"published,omitempty"`
	Protocol  string `json:"protocol,omitempty"` // "tcp" (default) or "udp"
	HostIP    string `json:"host_ip,omitempty"`
}

// Mount types.
const (
	MountVolume = "volume"
	MountBind   = "bind"
	MountTmpfs  = "tmpfs"
)

// MountSpec mounts a named volume, a host path or a tmpfs into a replica.
// For MountVolume, Source is the project's volume name (not the Docker name);
// empty Source is an anonymous volume.
type MountSpec struct {
	Type     string `json:"type"`
	Source   string `json:"source,omitempty"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// HealthcheckSpec mirrors compose's healthcheck. Test is in Docker form:
// ["CMD", "/app", "-health"], ["CMD-SHELL", "curl -f ..."] or ["NONE"].
type HealthcheckSpec struct {
	Test        []string `json:"test,omitempty"`
	Interval    Duration `json:"interval,omitempty"`
	Timeout     Duration `json:"timeout,omitempty"`
	StartPeriod Duration `json:"start_period,omitempty"`
	Retries     int      `json:"retries,omitempty"`
	Disable     bool     `json:"disable,omitempty"`
}

// Dependency conditions, as in compose.
const (
	ConditionStarted   = "service_started"
	ConditionHealthy   = "service_healthy"
	ConditionCompleted = "service_completed_successfully"
)

// DependencySpec is one entry of depends_on.
type DependencySpec struct {
	Condition string `json:"condition"`
	Required  bool   `json:"required"`
}

// FileRef mounts a secret or config of the project into a replica as a file.
// Target defaults to /run/secrets/<source> for secrets and /<source> for
// configs.
type FileRef struct {
	Source string `json:"source"`
	Target string `json:"target,omitempty"`
	UID    string `json:"uid,omitempty"`
	GID    string `json:"gid,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`
}

// ServiceNetwork is a service's attachment to a project network.
type ServiceNetwork struct {
	Aliases []string `json:"aliases,omitempty"`
}

// Resources are deploy.resources: limits are enforced by the runtime,
// reservations are what the scheduler books on a node.
type Resources struct {
	Limits       ResourceAmounts `json:"limits,omitempty"`
	Reservations ResourceAmounts `json:"reservations,omitempty"`
}

// ResourceAmounts is an amount of CPU (in cores) and memory (in bytes).
type ResourceAmounts struct {
	CPUs   float64 `json:"cpus,omitempty"`
	Memory int64   `json:"memory,omitempty"`
}

// Restart conditions, as in compose's deploy.restart_policy.
const (
	RestartAny       = "any"
	RestartOnFailure = "on-failure"
	RestartNone      = "none"
)

// RestartPolicy is deploy.restart_policy. Zero values take ruche's defaults:
// condition any, delay 1s (doubled on each consecutive failure up to 1m),
// unlimited attempts, window 10s (a replica that ran that long resets the
// backoff).
type RestartPolicy struct {
	Condition   string   `json:"condition,omitempty"`
	Delay       Duration `json:"delay,omitempty"`
	MaxAttempts int      `json:"max_attempts,omitempty"`
	Window      Duration `json:"window,omitempty"`
}

// Update orders and failure actions, as in compose's deploy.update_config.
const (
	OrderStopFirst  = "stop-first"
	OrderStartFirst = "start-first"

	FailureRollback = "rollback"
	FailurePause    = "pause"
	FailureContinue = "continue"
)

// ParallelismAll is an UpdateConfig.Parallelism that updates every
// replica at once: what compose's `parallelism: 0` means.
const ParallelismAll = math.MaxInt32

// UpdateConfig is deploy.update_config or deploy.rollback_config. Zero
// values take ruche's defaults: parallelism 1, delay 0, order stop-first,
// monitor 5s, failure_action rollback (ruche rolls a failed update back by
// itself; compose's own default is pause), max_failure_ratio 0.
type UpdateConfig struct {
	// Parallelism is how many replicas are updated at once; 0 means the
	// default (1). Use a number >= replicas, such as ParallelismAll, to
	// update all at once.
	Parallelism     int      `json:"parallelism,omitempty"`
	Delay           Duration `json:"delay,omitempty"`
	FailureAction   string   `json:"failure_action,omitempty"`
	Monitor         Duration `json:"monitor,omitempty"`
	MaxFailureRatio float64  `json:"max_failure_ratio,omitempty"`
	Order           string   `json:"order,omitempty"`
}

// Placement is deploy.placement.
type Placement struct {
	// Constraints are "node.labels.zone == home", "node.hostname != a", ...
	Constraints []string `json:"constraints,omitempty"`
}

// Spread modes of x-ruche.spread.
const (
	SpreadDefault         = ""
	SpreadMaxAvailability = "max_availability"
)

// RucheExtension is the service's x-ruche extension field: platform settings
// that compose has no key for.
type RucheExtension struct {
	// Public false keeps a service private even if it declares a route or a
	// published port. Nil means the default (public if it declares one).
	Public *bool  `json:"public,omitempty"`
	Spread string `json:"spread,omitempty"`
}
