package scheduler

import (
	"errors"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

func TestParseConstraint(t *testing.T) {
	tests := []struct {
		in      string
		want    Constraint
		wantErr bool
	}{
		{in: "node.labels.zone == home", want: Constraint{Field: "node.labels.zone", Equal: true, Value: "home"}},
		{in: "node.labels.zone!=home", want: Constraint{Field: "node.labels.zone", Equal: false, Value: "home"}},
		{in: "  node.hostname ==  a ", want: Constraint{Field: "node.hostname", Equal: true, Value: "a"}},
		{in: "node.id != n1", want: Constraint{Field: "node.id", Value: "n1"}},
		{in: "node.role == manager", want: Constraint{Field: "node.role", Equal: true, Value: "manager"}},
		{in: "node.role == boss", wantErr: true},
		{in: "node.labels.zone", wantErr: true},
		{in: "node.labels. == x", wantErr: true},
		{in: "node.labels.zone == ", wantErr: true},
		{in: "node.labels.zone === x", wantErr: true},
		{in: "engine.labels.os == linux", wantErr: true},
		{in: "node.platform.os == linux", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseConstraint(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidConstraint) {
					t.Fatalf("ParseConstraint(%q) error = %v, want ErrInvalidConstraint", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConstraint(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseConstraint(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestConstraintMatch(t *testing.T) {
	node := client.Node{ID: "n1", Hostname: "a", Role: "manager+agent", Labels: map[string]string{"zone": "home"}}
	tests := []struct {
		c    string
		want bool
	}{
		{"node.labels.zone == home", true},
		{"node.labels.zone == cloud", false},
		{"node.labels.zone != cloud", true},
		{"node.labels.zone != home", false},
		{"node.labels.disk == ssd", false}, // absent label never equals
		{"node.labels.disk != ssd", true},  // and always differs
		{"node.hostname == a", true},
		{"node.hostname != a", false},
		{"node.id == n1", true},
		{"node.role == manager", true},
		{"node.role == worker", false},
	}
	for _, tt := range tests {
		t.Run(tt.c, func(t *testing.T) {
			c, err := ParseConstraint(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Match(node); got != tt.want {
				t.Errorf("%q.Match = %v, want %v", tt.c, got, tt.want)
			}
		})
	}
	if got := mustParse(t, "node.role == worker").Match(client.Node{Role: "agent"}); !got {
		t.Errorf("agent node: node.role == worker = false, want true")
	}
}

func mustParse(t *testing.T, s string) Constraint {
	t.Helper()
	c, err := ParseConstraint(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
