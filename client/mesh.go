package client

// The wire types of ruche's own networks across nodes (`ruche up --networks
// ruche`, DESIGN.md "Private networks"): the managers own the addressing
// (IPAM) and hand each node the WireGuard mesh it must build.

// MeshNode is a node on ruche's networks, as it joins (Node, Range,
// PublicKey, Endpoint, Avoid) and as the managers record it (Addr added).
type MeshNode struct {
	Node string `json:"node"`
	// Range is the node's --private-range; it must be the cluster's (the
	// first node to ask sets it).
	Range string `json:"range"`
	// PublicKey is the node's WireGuard public key (base64) and Endpoint
	// the UDP host:port other nodes reach it at; both empty for a node
	// without a mesh device (one node, no advertise address).
	PublicKey string `json:"public_key,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`
	// Addr is the node's own address in the mesh, given by the managers
	// from the first /24 of the range: the source of the node's traffic
	// to containers on other nodes (its ingress).
	Addr string `json:"addr,omitempty"`
	// Avoid are the prefixes of the range the node's own routes, addresses
	// and resolvers use: no subnet overlapping one is given to any node.
	Avoid []string `json:"avoid,omitempty"`
}

// SubnetRequest asks the managers for the subnet of a network on a node.
type SubnetRequest struct {
	Node    string `json:"node"`
	Range   string `json:"range"`
	Network string `json:"network"` // the engine name (agent.NetworkName: ruche-<project>-<network>)
	Project string `json:"project"`
	// Want is the subnet the node already has for the network (its own
	// state, from before the managers knew it): given again if free.
	Want  string   `json:"want,omitempty"`
	Avoid []string `json:"avoid,omitempty"`
}

// Subnet is the /24 of a network on one node.
type Subnet struct {
	Network string `json:"network"`
	Project string `json:"project"`
	Node    string `json:"node"`
	Subnet  string `json:"subnet"`
}

// MeshName is a ready replica's address on a network, with the names it
// answers to there.
type MeshName struct {
	Network string   `json:"network"`
	Node    string   `json:"node"`
	Task    string   `json:"task"`
	Addr    string   `json:"addr"`
	Names   []string `json:"names"`
}

// MeshState is what a node needs to build its part of the mesh: every
// mesh node and subnet of the cluster, and the names of the ready replicas
// of other nodes on the networks that have a subnet on it.
type MeshState struct {
	Range   string     `json:"range"`
	Nodes   []MeshNode `json:"nodes"`
	Subnets []Subnet   `json:"subnets"`
	Names   []MeshName `json:"names"`
}
