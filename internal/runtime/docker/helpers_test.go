package docker_test

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/ruche-platform/ruche/internal/runtime/docker"
)

func removeImage(t *testing.T, rt *docker.Runtime, ref string) {
	_, err := rt.Client().ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	if err != nil {
		t.Logf("remove image %s: %v", ref, err)
	}
}
