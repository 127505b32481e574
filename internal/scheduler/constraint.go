package scheduler

import (
	"fmt"
	"strings"

	"github.com/ruche-platform/ruche/client"
)

// Constraint is one parsed deploy.placement.constraints entry:
// "<field> == <value>" or "<field> != <value>".
//
// Fields: node.id, node.hostname, node.role (manager or worker) and
// node.labels.<name>. A label constraint with != matches a node that lacks
// the label, as in Swarm.
type Constraint struct {
	Field string // "node.id", "node.hostname", "node.role" or "node.labels.<name>"
	Equal bool   // == (true) or != (false)
	Value string
}

const labelPrefix = "node.labels."

// ParseConstraint parses s. Errors wrap ErrInvalidConstraint and say what
// is accepted, so the API can show them as they are.
func ParseConstraint(s string) (Constraint, error) {
	op, equal := "==", true
	i := strings.Index(s, "==")
	if j := strings.Index(s, "!="); j >= 0 && (i < 0 || j < i) {
		i, op, equal = j, "!=", false
	}
	if i < 0 {
		return Constraint{}, fmt.Errorf("%w %q: want <field> == <value> or <field> != <value>", ErrInvalidConstraint, s)
	}
	field := strings.TrimSpace(s[:i])
	value := strings.TrimSpace(s[i+len(op):])
	if value == "" || strings.ContainsAny(value, "=!") {
		return Constraint{}, fmt.Errorf("%w %q: missing or malformed value", ErrInvalidConstraint, s)
	}
	switch {
	case field == "node.id", field == "node.hostname":
	case field == "node.role":
		if value != "manager" && value != "worker" {
			return Constraint{}, fmt.Errorf("%w %q: node.role is manager or worker", ErrInvalidConstraint, s)
		}
	case strings.HasPrefix(field, labelPrefix) && len(field) > len(labelPrefix):
	default:
		return Constraint{}, fmt.Errorf("%w %q: unknown field %q (supported: node.id, node.hostname, node.role, node.labels.<name>)", ErrInvalidConstraint, s, field)
	}
	return Constraint{Field: field, Equal: equal, Value: value}, nil
}

// ParseConstraints parses every entry of cs, returning the first error.
func ParseConstraints(cs []string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(cs))
	for _, s := range cs {
		c, err := ParseConstraint(s)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Match reports whether n satisfies c.
func (c Constraint) Match(n client.Node) bool {
	var got string
	var present bool
	switch {
	case c.Field == "node.id":
		got, present = n.ID, true
	case c.Field == "node.hostname":
		got, present = n.Hostname, true
	case c.Field == "node.role":
		got, present = "worker", true
		if strings.Contains(n.Role, "manager") {
			got = "manager"
		}
	default:
		got, present = n.Labels[strings.TrimPrefix(c.Field, labelPrefix)]
	}
	if c.Equal {
		return present && got == c.Value
	}
	return !present || got != c.Value
}

func (c Constraint) String() string {
	op := "=="
	if !c.Equal {
		op = "!="
	}
	return c.Field + " " + op + " " + c.Value
}
