package testimage

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	dockerclient "github.com/docker/docker/client"
)

func dockerOrSkip(t *testing.T) *dockerclient.Client {
	t.Helper()
	cli, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker is required in CI: %v", err)
		}
		t.Skipf("no docker daemon: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestBuildAndSkip(t *testing.T) {
	cli := dockerOrSkip(t)
	ctx := context.Background()
	tag := fmt.Sprintf("ruche-testimage-selftest:%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	if err := Build(ctx, cli, "github.com/ruche-platform/ruche/examples/hello", tag); err != nil {
		t.Fatal(err)
	}
	first, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if first.Config.Labels[HashLabel] == "" {
		t.Fatalf("image has no %s label: %v", HashLabel, first.Config.Labels)
	}
	if got, want := first.Config.Entrypoint, []string{"/hello"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("entrypoint: got %v, want %v", got, want)
	}
	// Same binary: no rebuild, same image ID.
	if err := Build(ctx, cli, "github.com/ruche-platform/ruche/examples/hello", tag); err != nil {
		t.Fatal(err)
	}
	second, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID {
		t.Errorf("rebuilt an unchanged binary: got image %s, want %s", second.ID, first.ID)
	}
}

func TestBuildError(t *testing.T) {
	cli := dockerOrSkip(t)
	err := Build(context.Background(), cli, "github.com/ruche-platform/ruche/nosuchpkg", "ruche-testimage-never:1")
	if err == nil {
		t.Fatal("got nil error for a package that does not exist")
	}
}
