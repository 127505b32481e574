package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// ProjectRecord is a project's desired state apart from its services, which
// have a key each.
type ProjectRecord struct {
	Name     string                        `json:"name"`
	Volumes  map[string]client.VolumeSpec  `json:"volumes,omitempty"`
	Networks map[string]client.NetworkSpec `json:"networks,omitempty"`
	// Secrets and Configs map a name to the hash of its content, so a
	// change of content changes the spec of the services that use it.
	Secrets   map[string]string `json:"secrets,omitempty"`
	Configs   map[string]string `json:"configs,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// ServiceRecord is a service's desired state. Version counts changes of the
// replica template (everything in Spec but Replicas); Previous is the spec
// before the latest template change, for rollback.
type ServiceRecord struct {
	Spec            client.ServiceSpec  `json:"spec"`
	Version         int64               `json:"version"`
	Previous        *client.ServiceSpec `json:"previous,omitempty"`
	PreviousVersion int64               `json:"previous_version,omitempty"`
	// Rollback is set when Spec was put back from Previous: by the
	// controller after a failed update, or by `ruche rollback`. The
	// controller then rolls with rollback_config.
	Rollback  bool      `json:"rollback,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TaskRecord is a replica assignment: everything the agent of Node needs to
// run it, so that it never has to look anything else up (except secret and
// config contents). Replica.Status is always zero here: the agent's report
// lives under TaskStatusKey.
type TaskRecord struct {
	client.Replica
	Spec     client.ServiceSpec            `json:"spec"`
	Volumes  map[string]client.VolumeSpec  `json:"volumes,omitempty"`  // the project volumes Spec mounts
	Networks map[string]client.NetworkSpec `json:"networks,omitempty"` // the project networks Spec joins
}

// SecretRecord is a secret's content, sealed (see package secret).
type SecretRecord struct {
	Sealed []byte `json:"sealed"`
	Hash   string `json:"hash"`
}

// ConfigRecord is a config's content.
type ConfigRecord struct {
	Data []byte `json:"data"`
	Hash string `json:"hash"`
}

// CleanupRecord asks agents to remove what a removed project left on their
// node once none of its replicas runs there: networks always, volumes only
// if asked. Each agent takes its node out of Nodes; the last one deletes the
// record.
type CleanupRecord struct {
	Project string    `json:"project"`
	Volumes bool      `json:"volumes"`
	Nodes   []string  `json:"nodes"`
	Created time.Time `json:"created"`
}

// TokenRecord is an API token, stored by the SHA-256 of its secret.
type TokenRecord struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`              // "admin" for now; per-project roles later
	Project string    `json:"project,omitempty"` // empty: every project
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitempty"`
}

// JoinTokenRecord is a join token, stored by the SHA-256 of its secret. It
// authenticates nothing but one join: the join deletes it in the
// transaction that creates the node record.
type JoinTokenRecord struct {
	Role    string    `json:"role"` // "agent" or "manager"
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// ClusterRecord identifies the cluster.
type ClusterRecord struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

// NetworksRecord is the cluster's kind of replica networks, settled by
// its first manager: "docker" (a Docker network per project network on
// each node) or "ruche" (ruche's own, across nodes over the WireGuard
// mesh, in Range). Every node follows it.
type NetworksRecord struct {
	Mode  string `json:"mode"`
	Range string `json:"range,omitempty"`
}

// Encode is json.Marshal for records; records always encode.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: encode %T: %v", v, err))
	}
	return b
}

// Decode unmarshals a record, naming the key on error.
func Decode(kv KV, v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	return nil
}

// GetJSON reads key into v and returns its mod revision.
func GetJSON(ctx context.Context, s Store, key string, v any) (int64, error) {
	kv, err := s.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	return kv.ModRevision, Decode(kv, v)
}
