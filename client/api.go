package client

// DeployRequest is the body of PUT /v1/projects/{name}.
type DeployRequest struct {
	Project ProjectSpec `json:"project"`
	// DryRun validates and computes the changes without applying them.
	DryRun bool `json:"dry_run,omitempty"`
}

// Change kinds in a deploy plan.
const (
	ChangeCreate    = "create"
	ChangeUpdate    = "update"
	ChangeScale     = "scale"
	ChangeRoutes    = "routes" // only the routes changed: no replica is touched (a route to a new port in a cluster is an update)
	ChangeRemove    = "remove"
	ChangeUnchanged = "unchanged"
)

// Change is what a deploy does to one service.
type Change struct {
	Service string `json:"service"`
	Kind    string `json:"kind"`
	// Fields names the spec fields that differ, for updates.
	Fields []string `json:"fields,omitempty"`
	// From and To are replica counts.
	From int `json:"from"`
	To   int `json:"to"`
	// Revision is the store revision the change was written at (0 for a
	// dry run or no change): wait for UpdateStatus.ObservedRevision >= it.
	Revision int64 `json:"revision,omitempty"`
}

// DeployResponse says what a deploy changed (or would change, for a dry run).
type DeployResponse struct {
	Project string   `json:"project"`
	DryRun  bool     `json:"dry_run,omitempty"`
	Changes []Change `json:"changes"`
	// Revision is the store revision the deploy was written at (0 for a
	// dry run or no change).
	Revision int64 `json:"revision,omitempty"`
	// Placements, for a dry run, say where each replica the deploy would
	// create would go and why, in service and slot order. Computed by
	// the scheduler on the nodes and replicas of the moment; the real
	// placement happens later and may differ.
	Placements []ReplicaPlacement `json:"placements,omitempty"`
}

// ReplicaPlacement is where a dry run would place one replica.
type ReplicaPlacement struct {
	Service string `json:"service"`
	Slot    int    `json:"slot"`
	// Node is the node's ID and NodeName its hostname; both empty when
	// no node can take the replica (Error says why).
	Node     string `json:"node,omitempty"`
	NodeName string `json:"node_name,omitempty"`
	// Why is the scheduler's reason ("lowest score of 3 eligible nodes
	// (...)"); Error is its NoNodeError text.
	Why   string `json:"why,omitempty"`
	Error string `json:"error,omitempty"`
}

// ScaleRequest is the body of POST /v1/projects/{p}/services/{s}/scale.
type ScaleRequest struct {
	Replicas int `json:"replicas"`
}

// RemoveRequest is the body of DELETE /v1/projects/{name}.
type RemoveRequest struct {
	// Volumes also removes the project's named volumes. Never implied.
	Volumes bool `json:"volumes,omitempty"`
}

// Error is the JSON body of every API error.
type Error struct {
	Status  int    `json:"status"`
	Code    string `json:"code"` // "invalid", "not_found", "conflict", "unauthorized", ...
	Message string `json:"message"`
	// Details lists one line per problem when there are several (each key of a
	// compose file that is not supported, with its line).
	Details []string `json:"details,omitempty"`
}

func (e *Error) Error() string { return e.Message }
