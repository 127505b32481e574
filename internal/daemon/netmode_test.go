package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/internal/store"
)

// TestClusterNetworks: the first manager settles the cluster's networks;
// the others follow them and refuse flags that say otherwise; a cluster
// made before the record keeps Docker's.
func TestClusterNetworks(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st := store.NewMemory()
	defer st.Close()
	rng := netip.MustParsePrefix("10.9.0.0/16")
	first := NetworksConfig{Mode: NetworksRuche, PrivateRange: rng}
	if err := clusterNetworks(ctx, st, &first, true, log); err != nil {
		t.Fatal(err)
	}
	var rec store.NetworksRecord
	if _, err := store.GetJSON(ctx, st, store.NetworksKey, &rec); err != nil || rec != (store.NetworksRecord{Mode: NetworksRuche, Range: "10.9.0.0/16"}) {
		t.Fatalf("record %+v %v", rec, err)
	}
	var next NetworksConfig
	if err := clusterNetworks(ctx, st, &next, false, log); err != nil || next.Mode != NetworksRuche || next.PrivateRange != rng {
		t.Errorf("a node without flags: %+v %v, want the cluster's", next, err)
	}
	if err := clusterNetworks(ctx, st, &NetworksConfig{Mode: NetworksDocker}, false, log); err == nil || !strings.Contains(err.Error(), "this cluster's replicas use --networks ruche") {
		t.Errorf("--networks docker on a ruche cluster: %v", err)
	}
	other := NetworksConfig{PrivateRange: netip.MustParsePrefix("10.10.0.0/16")}
	if err := clusterNetworks(ctx, st, &other, false, log); err == nil || !strings.Contains(err.Error(), "this cluster's private range is 10.9.0.0/16") {
		t.Errorf("another --private-range: %v", err)
	}

	old := store.NewMemory() // a cluster from before the record
	defer old.Close()
	var nc NetworksConfig
	if err := clusterNetworks(ctx, old, &nc, false, log); err != nil || nc.Mode != NetworksDocker {
		t.Errorf("a cluster without the record: %+v %v, want Docker's", nc, err)
	}
	// An agent's identity from before the record: Docker's.
	nc = NetworksConfig{}
	if err := follow(&nc, store.NetworksRecord{}); err != nil || nc.Mode != NetworksDocker {
		t.Errorf("no record: %+v %v", nc, err)
	}
}
