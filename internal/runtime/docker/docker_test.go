package docker_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/runtime/docker"
	"github.com/ruche-platform/ruche/internal/runtime/runtimetest"
	"github.com/ruche-platform/ruche/internal/testimage"
)

// newDocker returns a driver for the local daemon, or skips (fails in CI)
// when there is none.
func newDocker(t *testing.T) *docker.Runtime {
	t.Helper()
	rt, err := docker.New(docker.Config{PullTimeout: time.Minute})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = rt.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker is required in CI: %v", err)
		}
		t.Skipf("no docker daemon: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

func TestConformance(t *testing.T) {
	rt := newDocker(t)
	prefix := fmt.Sprintf("ruche-rtdocker-%d", time.Now().UnixNano()%1e9)
	image := prefix + "-hello:test"
	ctx := context.Background()
	if err := testimage.Build(ctx, rt.Client(), "github.com/ruche-platform/ruche/examples/hello", image); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeImage(t, rt, image) })
	runtimetest.Run(t, rt, runtimetest.Config{Image: image, Prefix: prefix})
}
