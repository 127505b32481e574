package docker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/testimage"
)

// TestNetworkRemovedBehindTheDriversBack: EnsureNetwork remembers the
// networks it made, so it does not ask the engine again; a network removed
// by someone else makes Create fail with ErrNotFound, after which
// EnsureNetwork makes it again and Create works.
func TestNetworkRemovedBehindTheDriversBack(t *testing.T) {
	rt := newDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := fmt.Sprintf("ruche-rtnet-%d", time.Now().UnixNano()%1e9)
	image := prefix + "-hello:test"
	if err := testimage.Build(ctx, rt.Client(), "github.com/ruche-platform/ruche/examples/hello", image); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeImage(t, rt, image) })
	n := runtime.Network{Name: prefix + "-net", Labels: map[string]string{"test": prefix}}
	t.Cleanup(func() { _ = rt.RemoveNetwork(context.Background(), n.Name) })
	if err := rt.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	// Removed with the engine's own client: the driver does not know.
	if err := rt.Client().NetworkRemove(ctx, n.Name); err != nil {
		t.Fatal(err)
	}
	if err := rt.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	spec := runtime.ContainerSpec{
		Name: prefix + "-c", Image: image, Labels: map[string]string{"test": prefix},
		Networks: []runtime.Attachment{{Network: n.Name, Aliases: []string{"c"}}},
	}
	t.Cleanup(func() { _ = rt.Remove(context.Background(), spec.Name) })
	id, err := rt.Create(ctx, spec)
	if errors.Is(err, runtime.ErrNotFound) { // engines that check networks at creation
		if err := rt.EnsureNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
		id, err = rt.Create(ctx, spec)
	}
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := rt.Start(ctx, id); errors.Is(err, runtime.ErrNotFound) { // Docker 20.10 checks here
		if err := rt.EnsureNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
		err = rt.Start(ctx, id)
		if err != nil {
			t.Fatalf("start after EnsureNetwork: %v", err)
		}
	} else if err != nil {
		t.Fatalf("start: %v", err)
	}
	c, err := rt.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Running || c.Addresses[n.Name] == "" {
		t.Errorf("container: got running %v, addresses %v; want running on %s", c.Running, c.Addresses, n.Name)
	}
}
