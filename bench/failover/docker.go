package main

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/ruche-platform/ruche/internal/testbed"
)

// runningContainers counts the running containers matching f in every
// node's daemon.
func runningContainers(ctx context.Context, tb *testbed.Testbed, f filters.Args) (int, error) {
	f = f.Clone()
	f.Add("status", "running")
	total := 0
	for _, n := range tb.Nodes() {
		cli, err := n.Docker()
		if err != nil {
			return 0, err
		}
		cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: f})
		cli.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: containers: %w", n.Name(), err)
		}
		total += len(cs)
	}
	return total, nil
}

// sameImage copies image from node1's daemon into the others' (docker save
// | docker load), so that every daemon holds it under the same ID: each
// node built its own, and a build's ID depends on its time. Swarm is given
// the image by that ID. It returns the ID.
func sameImage(ctx context.Context, tb *testbed.Testbed, image string) (string, error) {
	nodes := tb.Nodes()
	from, err := nodes[0].Docker()
	if err != nil {
		return "", err
	}
	defer from.Close()
	img, err := from.ImageInspect(ctx, image)
	if err != nil {
		return "", fmt.Errorf("%s: inspect %s: %w", nodes[0].Name(), image, err)
	}
	for _, n := range nodes[1:] {
		if err := n.LoadImages(ctx, from, image); err != nil {
			return "", err
		}
		cli, err := n.Docker()
		if err != nil {
			return "", err
		}
		got, err := cli.ImageInspect(ctx, img.ID)
		cli.Close()
		if err != nil || got.ID != img.ID {
			return "", fmt.Errorf("%s: %s is not %s after the load: %v", n.Name(), image, img.ID, err)
		}
	}
	return img.ID, nil
}
