package docker_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/runtime"
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

// TestLogLimits: containers get the engine's default log driver with
// max-size and max-file when it writes files, and the engine's own setting
// when no limit is set.
func TestLogLimits(t *testing.T) {
	rt := newDocker(t)
	ctx := context.Background()
	info, err := rt.Client().Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.LoggingDriver != "json-file" && info.LoggingDriver != "local" {
		t.Skipf("the engine's default log driver is %s, which the limits leave alone", info.LoggingDriver)
	}
	prefix := fmt.Sprintf("ruche-rtdocker-logs-%d", time.Now().UnixNano()%1e9)
	image := prefix + "-hello:test"
	if err := testimage.Build(ctx, rt.Client(), "github.com/ruche-platform/ruche/examples/hello", image); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeImage(t, rt, image) })
	limited, err := docker.New(docker.Config{Logs: docker.LogLimits{MaxSize: "1m", MaxFiles: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { limited.Close() })

	for _, tc := range []struct {
		name      string
		rt        *docker.Runtime
		size, num string
	}{
		{"limited", limited, "1m", "2"},
		{"unlimited", rt, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.rt.Create(ctx, runtime.ContainerSpec{Name: prefix + "-" + tc.name, Image: image})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = rt.Remove(context.Background(), id) })
			c, err := rt.Client().ContainerInspect(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			lc := c.HostConfig.LogConfig
			if lc.Type != info.LoggingDriver {
				t.Errorf("log driver %q, want the engine's %q", lc.Type, info.LoggingDriver)
			}
			if lc.Config["max-size"] != tc.size || lc.Config["max-file"] != tc.num {
				t.Errorf("log options %v, want max-size %q and max-file %q", lc.Config, tc.size, tc.num)
			}
		})
	}
}
