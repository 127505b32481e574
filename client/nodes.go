package client

import (
	"context"
	"net/http"
	"strconv"
)

// Node availabilities.
const (
	AvailabilityActive = "active" // takes new replicas
	AvailabilityDrain  = "drain"  // takes none; its replicas are moved away
)

// Node statuses (written by the leader's node monitor).
const (
	NodeReady = "ready"
	NodeDown  = "down"
)

// NodeLabelRequest is the body of POST /v1/nodes/{node}/labels: labels to
// set and label keys to remove. Labels set by managers win over the
// agent's own --label when it registers again.
type NodeLabelRequest struct {
	Set    map[string]string `json:"set,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// RebalanceRequest is the body of POST /v1/rebalance. Project (and
// Service) narrow it; empty means every service.
type RebalanceRequest struct {
	Project string `json:"project,omitempty"`
	Service string `json:"service,omitempty"`
	// Force also moves replicas bound to their node by a named volume (a
	// local volume stays where it is: the moved replica starts with an
	// empty one). Needs Project and Service.
	Force  bool `json:"force,omitempty"`
	DryRun bool `json:"dry_run,omitempty"`
}

// Move is one replica `ruche rebalance` moves.
type Move struct {
	Replica string `json:"replica"` // task ID
	Name    string `json:"name"`    // "web.2"
	Project string `json:"project"`
	Service string `json:"service"`
	From    string `json:"from"` // node ID
	Reason  string `json:"reason"`
}

// RebalanceResponse lists the moves asked for (the controller makes them,
// start-first, one at a time per service).
type RebalanceResponse struct {
	Moves    []Move `json:"moves"`
	DryRun   bool   `json:"dry_run,omitempty"`
	Revision int64  `json:"revision,omitempty"`
}

// NodeRemoveResponse says what `ruche node rm` removed.
type NodeRemoveResponse struct {
	Node string `json:"node"`
	// Replicas are the assignments removed with the node (--force); the
	// controller places them elsewhere.
	Replicas []string `json:"replicas,omitempty"`
}

// Node returns one node.
func (c *Client) Node(ctx context.Context, id string) (*Node, error) {
	var out Node
	return &out, c.do(ctx, http.MethodGet, "/v1/nodes/"+esc(id), nil, "", &out)
}

// DrainNode sets a node's availability to drain: its replicas move away.
func (c *Client) DrainNode(ctx context.Context, id string) (*Node, error) {
	return c.setAvailability(ctx, id, AvailabilityDrain)
}

// ActivateNode sets a node's availability back to active.
func (c *Client) ActivateNode(ctx context.Context, id string) (*Node, error) {
	return c.setAvailability(ctx, id, AvailabilityActive)
}

func (c *Client) setAvailability(ctx context.Context, id, a string) (*Node, error) {
	var out Node
	return &out, c.do(ctx, http.MethodPost, "/v1/nodes/"+esc(id)+"/"+a, nil, "", &out)
}

// RemoveNode deletes a node's record; with force also while replicas are
// assigned to it (they are placed elsewhere).
func (c *Client) RemoveNode(ctx context.Context, id string, force bool) (*NodeRemoveResponse, error) {
	var out NodeRemoveResponse
	return &out, c.do(ctx, http.MethodDelete, "/v1/nodes/"+esc(id)+"?force="+strconv.FormatBool(force), nil, "", &out)
}

// LabelNode sets and removes node labels.
func (c *Client) LabelNode(ctx context.Context, id string, req NodeLabelRequest) (*Node, error) {
	var out Node
	return &out, c.do(ctx, http.MethodPost, "/v1/nodes/"+esc(id)+"/labels", jsonBody(req), "application/json", &out)
}

// Rebalance asks for running replicas to be moved where they spread better.
func (c *Client) Rebalance(ctx context.Context, req RebalanceRequest) (*RebalanceResponse, error) {
	var out RebalanceResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/rebalance", jsonBody(req), "application/json", &out)
}
