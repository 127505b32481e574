package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"

	"github.com/ruche-platform/ruche/internal/store"
)

// The replicas' networks are the cluster's, not a node's: its first
// manager settles them (store.NetworksRecord) and every node follows.

// clusterNetworks settles nc from the cluster's record: a node follows it
// (a flag that says otherwise is an error); a cluster without one records
// nc's, or for a new cluster the default (defaultNetworks), or for one
// made before the record existed Docker's, the only ones then.
func clusterNetworks(ctx context.Context, st store.Store, nc *NetworksConfig, newCluster bool, log *slog.Logger) error {
	for {
		var rec store.NetworksRecord
		_, err := store.GetJSON(ctx, st, store.NetworksKey, &rec)
		if err == nil {
			return follow(nc, rec)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("the cluster's networks: %w", err)
		}
		rec = store.NetworksRecord{Mode: nc.Mode}
		switch {
		case rec.Mode != "":
		case newCluster:
			rec.Mode = defaultNetworks(log)
		default:
			rec.Mode = NetworksDocker
		}
		if rec.Mode == NetworksRuche {
			rec.Range = nc.rangeOrDefault().String()
		}
		_, err = st.Txn(ctx, []store.Cmp{store.ModRevisionIs(store.NetworksKey, 0)}, store.Put(store.NetworksKey, store.Encode(rec)))
		if errors.Is(err, store.ErrConflict) {
			continue // another manager settled them first
		}
		if err != nil {
			return fmt.Errorf("record the cluster's networks: %w", err)
		}
		log.Info("the cluster's replica networks", "networks", rec.Mode, "private_range", rec.Range)
		return follow(nc, rec)
	}
}

// follow makes nc the cluster's networks, refusing flags that say
// otherwise.
func follow(nc *NetworksConfig, rec store.NetworksRecord) error {
	if rec.Mode == "" {
		rec.Mode = NetworksDocker
	}
	if nc.Mode != "" && nc.Mode != rec.Mode {
		return fmt.Errorf("--networks %s: this cluster's replicas use --networks %s, settled when it was made; every node follows it (start without --networks)", nc.Mode, rec.Mode)
	}
	nc.Mode = rec.Mode
	if rec.Mode != NetworksRuche {
		return nil
	}
	rng, err := netip.ParsePrefix(rec.Range)
	if err != nil {
		return fmt.Errorf("the cluster's private range %q: %w", rec.Range, err)
	}
	if nc.PrivateRange.IsValid() && nc.PrivateRange != rng {
		return fmt.Errorf("--private-range %s: this cluster's private range is %s; every node follows it (start without --private-range)", nc.PrivateRange, rng)
	}
	nc.PrivateRange = rng
	return nil
}

// defaultNetworks is what a new cluster gets without --networks: ruche's
// own networks where this node can make them (root, iptables, a static
// binary to run as the containers' init), else Docker's.
func defaultNetworks(log *slog.Logger) string {
	reason := ""
	if os.Geteuid() != 0 {
		reason = "not running as root"
	} else if _, err := exec.LookPath("iptables"); err != nil {
		reason = "no iptables"
	} else if _, err := staticExecutable(); err != nil {
		reason = err.Error()
	}
	if reason != "" {
		log.Warn("the cluster gets Docker's networks: ruche's own need root, iptables and a static binary", "reason", reason)
		return NetworksDocker
	}
	return NetworksRuche
}
