package client

import "time"

// Desired states of a replica (a task, in Swarm's words).
const (
	DesiredRunning  = "running"
	DesiredShutdown = "shutdown"
)

// Replica states, as reported by the agent that runs it.
const (
	StatePending    = "pending"    // assigned, the agent has not acted yet
	StatePreparing  = "preparing"  // pulling the image, creating volumes and networks
	StateStarting   = "starting"   // running, healthcheck not passed yet
	StateRunning    = "running"    // running and ready (healthy, or no healthcheck)
	StateUnhealthy  = "unhealthy"  // running, healthcheck failing
	StateRestarting = "restarting" // exited, waiting for its restart backoff
	StateFailed     = "failed"     // exited and will not be restarted (restart policy), or could not start
	StateComplete   = "complete"   // exited 0 and will not be restarted
	StateStopping   = "stopping"   // desired shutdown, stop in progress
	StateShutdown   = "shutdown"   // container removed; the record is about to be deleted
)

// Replica is one replica of a service (a task): the manager's assignment and
// the agent's report of it. IDs are "<project>.<service>.<slot>.<nonce>";
// containers are named "<project>-<service>-<slot>-<nonce>".
type Replica struct {
	ID           string    `json:"id"`
	Project      string    `json:"project"`
	Service      string    `json:"service"`
	Slot         int       `json:"slot"`
	Version      int64     `json:"version"` // the service spec version it runs
	Node         string    `json:"node"`
	DesiredState string    `json:"desired_state"`
	CreatedAt    time.Time `json:"created_at"`
	// Moving is set (with the reason) on a replica `ruche rebalance` asked
	// to move: the controller starts its successor on another node, then
	// shuts it down.
	Moving string `json:"moving,omitempty"`

	Status ReplicaStatus `json:"status"`
}

// Name is how people see a replica: "web.2".
func (r Replica) Name() string { return r.Service + "." + itoa(r.Slot) }

// ReplicaStatus is written by the agent that runs the replica.
type ReplicaStatus struct {
	State       string            `json:"state"`
	Ready       bool              `json:"ready"`
	Health      string            `json:"health,omitempty"` // Docker's: starting, healthy, unhealthy
	ContainerID string            `json:"container_id,omitempty"`
	Message     string            `json:"message,omitempty"`
	ExitCode    int               `json:"exit_code,omitempty"`
	Restarts    int               `json:"restarts,omitempty"`
	Ports       []PortBinding     `json:"ports,omitempty"`
	Addresses   map[string]string `json:"addresses,omitempty"` // network -> container IP
	StartedAt   time.Time         `json:"started_at,omitempty"`
	UpdatedAt   time.Time         `json:"updated_at,omitempty"`
}

// PortBinding is a container port published on the node.
type PortBinding struct {
	Target    uint16 `json:"target"`
	Published uint16 `json:"published"`
	Protocol  string `json:"protocol"`
	HostIP    string `json:"host_ip,omitempty"`
	// Route marks a binding the agent published itself, on its node's
	// advertise address, so that the ingress of other nodes reaches a
	// route's target port (not a port the service publishes).
	Route bool `json:"route,omitempty"`
}

// Update states of a service.
const (
	UpdateNone        = ""             // never updated
	UpdateDeploying   = "deploying"    // first version being created
	UpdateUpdating    = "updating"     // rolling to a new version
	UpdateScaling     = "scaling"      // replica count changing
	UpdateCompleted   = "completed"    // converged
	UpdatePaused      = "paused"       // failure_action pause stopped the rollout
	UpdateRollingBack = "rolling_back" // going back to the previous version
	UpdateRolledBack  = "rolled_back"  // back on the previous version after a failure
	UpdateFailed      = "failed"       // no previous version to go back to, or rollback failed
)

// UpdateStatus tells where a service's latest change is.
type UpdateStatus struct {
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	Version int64  `json:"version"` // the version being rolled out (or rolled back to)
	// ObservedRevision is the store revision of the service record this
	// status is about: a client that changed the record at revision R
	// waits for ObservedRevision >= R before trusting Terminal().
	ObservedRevision int64     `json:"observed_revision"`
	StartedAt        time.Time `json:"started_at,omitempty"`
	CompletedAt      time.Time `json:"completed_at,omitempty"`
}

// Terminal reports whether the update has stopped moving: converged or given up.
func (u UpdateStatus) Terminal() bool {
	switch u.State {
	case UpdateCompleted, UpdatePaused, UpdateRolledBack, UpdateFailed:
		return true
	}
	return false
}

// Failed reports whether the latest change did not go through.
func (u UpdateStatus) Failed() bool {
	switch u.State {
	case UpdatePaused, UpdateRolledBack, UpdateFailed:
		return true
	}
	return false
}

// Service is a service as the API shows it: spec, version and status.
type Service struct {
	Project  string       `json:"project"`
	Name     string       `json:"name"`
	Spec     ServiceSpec  `json:"spec"`
	Version  int64        `json:"version"`
	Previous *ServiceSpec `json:"previous,omitempty"` // spec before the latest update, for rollback
	Update   UpdateStatus `json:"update"`
	Desired  int          `json:"desired"`
	Ready    int          `json:"ready"`
	Replicas []Replica    `json:"replicas,omitempty"`
}

// Project is a project as the API shows it.
type Project struct {
	Name      string    `json:"name"`
	Services  []Service `json:"services"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Removing is set while `ruche rm` tears the project down.
	Removing bool `json:"removing,omitempty"`
}

// Node is a machine that runs replicas.
type Node struct {
	ID           string            `json:"id"`
	Hostname     string            `json:"hostname"`
	Addr         string            `json:"addr,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Role         string            `json:"role"`         // "manager+agent", "agent"
	Status       string            `json:"status"`       // "ready", "down"
	Availability string            `json:"availability"` // "active", "drain"
	Capacity     ResourceAmounts   `json:"capacity"`
	// ManagerLabels are the labels set by `ruche node label`, and
	// RemovedLabels the ones it removed: they win over the agent's own
	// (--label) when it registers again. Labels is the result.
	ManagerLabels map[string]string `json:"manager_labels,omitempty"`
	RemovedLabels []string          `json:"removed_labels,omitempty"`
	Load          *NodeLoad         `json:"load,omitempty"`
	Replicas      int               `json:"replicas"`
	Version       string            `json:"version,omitempty"`
	UpdatedAt     time.Time         `json:"updated_at"`
	// CertSerial is the serial (hex) of the node certificate the managers
	// issued at join or last renewal; a certificate with another serial
	// (but CertSerialPrev) is refused.
	CertSerial string `json:"cert_serial,omitempty"`
	// CertSerialPrev is the serial of the certificate the node renewed
	// from: still accepted, so a renewal whose answer was lost does not
	// lock the node out. The next renewal replaces it.
	CertSerialPrev string `json:"cert_serial_prev,omitempty"`
	// NodeAPIAddr is where the node's agent serves its node API (mutual
	// TLS, managers only), as the agent registers it; empty means
	// <Addr>:7444.
	NodeAPIAddr string `json:"node_api_addr,omitempty"`
	// MetricsAddr is where the node's agent serves Prometheus metrics over
	// plain HTTP (`ruche agent --metrics-addr`); empty: not served there.
	MetricsAddr string `json:"metrics_addr,omitempty"`
}

// MetricsTargets are the scrape targets of a cluster in the format of
// Prometheus's http_sd_config (GET /v1/metrics/targets).
type MetricsTargets []MetricsTargetGroup

// MetricsTargetGroup is one group of targets with their labels.
type MetricsTargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// NodeLoad is a node's live load, reported with its heartbeats.
type NodeLoad struct {
	CPU     float64   `json:"cpu"` // cores in use
	Memory  int64     `json:"memory"`
	Load1   float64   `json:"load1"`
	Updated time.Time `json:"updated"`
}

// Event is one thing that happened, for `ruche events`.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"` // "deploy", "replica", "service", "project", "node"
	Action  string    `json:"action"`
	Project string    `json:"project,omitempty"`
	Service string    `json:"service,omitempty"`
	Replica string    `json:"replica,omitempty"` // "web.2", as Replica.Name (ruche ps, ruche logs)
	Node    string    `json:"node,omitempty"`
	Message string    `json:"message,omitempty"`
	Actor   string    `json:"actor,omitempty"`
}

// Status is the cluster overview of `ruche status`.
type Status struct {
	Version   string      `json:"version"`
	ClusterID string      `json:"cluster_id"`
	Leader    string      `json:"leader"`
	Managers  []Manager   `json:"managers"`
	Nodes     []Node      `json:"nodes"`
	Projects  int         `json:"projects"`
	Services  int         `json:"services"`
	Replicas  int         `json:"replicas"`
	Ready     int         `json:"ready"`
	Store     StoreStatus `json:"store"`
	// Networks is the cluster's kind of replica networks ("docker" or
	// "ruche") and PrivateRange the range of ruche's.
	Networks     string `json:"networks,omitempty"`
	PrivateRange string `json:"private_range,omitempty"`
}

// Manager is one manager (API endpoint and store member).
type Manager struct {
	Name    string `json:"name"`
	APIAddr string `json:"api_addr"`
	Leader  bool   `json:"leader"`
	Healthy bool   `json:"healthy"`
	// APIURL is the URL other machines reach its API at; PeerURL its
	// store member's peer URL. StoreMember: it is an etcd member (a
	// manager just removed or not yet started is not); DBSize is its
	// member's database size.
	APIURL      string `json:"api_url,omitempty"`
	PeerURL     string `json:"peer_url,omitempty"`
	StoreMember bool   `json:"store_member"`
	StoreLeader bool   `json:"store_leader,omitempty"`
	// StoreLearner: its member is a learner, not yet voting (a manager
	// joining: it catches up with the log, then is promoted).
	StoreLearner bool  `json:"store_learner,omitempty"`
	DBSize       int64 `json:"db_size,omitempty"`
}

// StoreStatus is the store's health and size.
type StoreStatus struct {
	Endpoint string `json:"endpoint"`
	DBSize   int64  `json:"db_size"`
	Quota    int64  `json:"quota"`
	Revision int64  `json:"revision"`
	Healthy  bool   `json:"healthy"`
	// DBSizeInUse is the part of DBSize holding data; the rest is
	// reclaimed by defragmentation. Members is the number of etcd members
	// that answered.
	DBSizeInUse int64 `json:"db_size_in_use,omitempty"`
	Members     int   `json:"members,omitempty"`
	// Alarms are raised etcd alarms (NOSPACE, CORRUPT); Warnings are what
	// `ruche status` prints about them and about a store near its quota.
	Alarms   []string `json:"alarms,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Error    string   `json:"error,omitempty"` // the store did not answer
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Route is a route as `ruche routes` shows it.
type Route struct {
	Host       string         `json:"host"`
	PathPrefix string         `json:"path_prefix,omitempty"`
	Project    string         `json:"project"`
	Service    string         `json:"service"`
	Port       uint16         `json:"port"`
	TLS        string         `json:"tls"`
	Replicas   []RouteReplica `json:"replicas"`
}

// RouteReplica is a replica behind a route.
type RouteReplica struct {
	Name  string `json:"name"`
	Node  string `json:"node"`
	Addr  string `json:"addr,omitempty"`
	State string `json:"state"`
	Ready bool   `json:"ready"`
}
