package cli

import (
	"bytes"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

func TestPrintChangesWithPlacements(t *testing.T) {
	resp := &client.DeployResponse{
		Project: "shop", DryRun: true,
		Changes: []client.Change{{Service: "web", Kind: client.ChangeCreate, To: 2}},
		Placements: []client.ReplicaPlacement{
			{Service: "web", Slot: 1, Node: "n1", NodeName: "node-b", Why: "lowest score of 3 eligible nodes (0.07: reserved 4%, load 5%, 0 other replicas of shop/web)"},
			{Service: "web", Slot: 2, Node: "n2", Why: "lowest score of 2 eligible nodes (0.07: reserved 4%, load 5%, 0 other replicas of shop/web)"},
			{Service: "web", Slot: 3, Error: "no node can run shop/web.3: node a: host port 8080/tcp in use by shop/web"},
		},
	}
	var out bytes.Buffer
	printChanges(&globals{stdout: &out}, resp)
	want := `would deploy (dry run) shop:
  + web: create, 2 replica(s)
placements (on the nodes of the moment):
  web.1 → n1 [node-b] (lowest score of 3 eligible nodes (0.07: reserved 4%, load 5%, 0 other replicas of shop/web))
  web.2 → n2 (lowest score of 2 eligible nodes (0.07: reserved 4%, load 5%, 0 other replicas of shop/web))
  web.3 → no node: no node can run shop/web.3: node a: host port 8080/tcp in use by shop/web
`
	if got := out.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
