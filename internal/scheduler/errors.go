package scheduler

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors.
var (
	// ErrInvalidConstraint is wrapped by every constraint parse error.
	ErrInvalidConstraint = errors.New("invalid placement constraint")
	// ErrNoNode is wrapped by NoNodeError: no node can take a replica.
	ErrNoNode = errors.New("no node can run the replica")
)

// NodeReason is why one node cannot take a replica.
type NodeReason struct {
	Node   string // hostname, or ID when the node has none
	Reason string
}

// NoNodeError says why a replica could not be placed, node by node.
type NoNodeError struct {
	Replica string // "shop/web.2"
	Reasons []NodeReason
}

// maxReasons bounds the message: past it, the rest are counted.
const maxReasons = 8

func (e *NoNodeError) Error() string {
	var b strings.Builder
	b.WriteString("no node can run ")
	b.WriteString(e.Replica)
	b.WriteString(": ")
	if len(e.Reasons) == 0 {
		b.WriteString("no nodes")
		return b.String()
	}
	for i, r := range e.Reasons {
		if i == maxReasons {
			b.WriteString("; and " + strconv.Itoa(len(e.Reasons)-i) + " more nodes")
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("node " + r.Node + ": " + r.Reason)
	}
	return b.String()
}

func (e *NoNodeError) Unwrap() error { return ErrNoNode }
