package netinit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHasDefaultRoute(t *testing.T) {
	dir := t.TempDir()
	for name, table := range map[string]string{
		"none":    "Iface\tDestination\tGateway\n",
		"subnet":  "Iface\tDestination\tGateway\neth0\t0000D00A\t00000000\n",
		"default": "Iface\tDestination\tGateway\neth0\t0000D00A\t00000000\neth0\t00000000\t0100D00A\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(table), 0o644)
		if got := hasDefaultRoute(p); got != (name == "default") {
			t.Errorf("%s: %v", name, got)
		}
	}
	if hasDefaultRoute(filepath.Join(dir, "missing")) {
		t.Error("missing file: true")
	}
}

// TestPoll: the fallback wait where no route watch can be opened asks
// until ready says true, and gives up with the context's error.
func TestPoll(t *testing.T) {
	calls := 0
	ready := func() bool { calls++; return calls == 3 }
	if err := poll(context.Background(), ready, time.Millisecond); err != nil || calls != 3 {
		t.Errorf("poll: %v after %d calls; want nil after 3", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := poll(ctx, func() bool { return false }, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("never ready: %v; want the deadline", err)
	}
}
