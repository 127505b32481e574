package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

func TestPrintManagers(t *testing.T) {
	ms := []client.Manager{
		{Name: "node1", APIURL: "https://10.0.0.1:7443", Leader: true, Healthy: true, StoreMember: true, StoreLeader: true, DBSize: 2 << 20},
		{Name: "node2", APIURL: "https://10.0.0.2:7443", Healthy: true, StoreMember: true, StoreLearner: true},
		{Name: "(starting)", PeerURL: "https://10.0.0.4:7480", StoreMember: true, StoreLearner: true},
	}
	var b bytes.Buffer
	printManagers(&b, ms)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want a header and 3:\n%s", len(lines), b.String())
	}
	for i, want := range [][]string{
		{"node1", "https://10.0.0.1:7443", "leader", "true", "yes (etcd leader)", "MiB"},
		{"node2", "https://10.0.0.2:7443", "learner (not voting yet)"},
		{"(starting)", "(peer https://10.0.0.4:7480)", "learner (not voting yet)"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %d: got %q, want it to contain %q", i+1, lines[i+1], w)
			}
		}
	}
}
