// Package testimage builds small container images for tests, the demo and
// benchmarks without any registry: a main package compiled static
// (CGO_ENABLED=0, -trimpath) into a FROM scratch image, built through the
// Engine API's legacy builder. A build is skipped when the image of that tag
// already carries the same binary hash.
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	dockerclient "github.com/docker/docker/client"
)

// HashLabel is the image label holding the SHA-256 of the binary inside.
const HashLabel = "ruche.testimage.hash"

// Label marks every image this package builds, so tests can find and
// remove them.
const Label = "ruche.testimage"

// Build compiles pkg (an import path or a path relative to the working
// directory, which must be inside the module) and builds tag from it,
// unless tag already holds the same binary. The binary is /<last element of
// pkg> and is the image's entrypoint.
func Build(ctx context.Context, cli *dockerclient.Client, pkg, tag string) error {
	dir, err := os.MkdirTemp("", "ruche-testimage-")
	if err != nil {
		return fmt.Errorf("testimage: %w", err)
	}
	defer os.RemoveAll(dir)
	name := path.Base(filepath.ToSlash(pkg))
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testimage: go build %s: %w: %s", pkg, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("testimage: %w", err)
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])

	img, err := cli.ImageInspect(ctx, tag)
	switch {
	case err == nil && img.Config != nil && img.Config.Labels[HashLabel] == hash:
		return nil
	case err != nil && !cerrdefs.IsNotFound(err):
		return fmt.Errorf("testimage: inspect %s: %w", tag, err)
	}

	dockerfile := fmt.Sprintf("FROM scratch\nCOPY %s /%s\nENTRYPOINT [\"/%s\"]\n", name, name, name)
	buildCtx, err := tarContext(map[string][]byte{"Dockerfile": []byte(dockerfile), name: data})
	if err != nil {
		return fmt.Errorf("testimage: %w", err)
	}
	resp, err := cli.ImageBuild(ctx, buildCtx, build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      map[string]string{HashLabel: hash, Label: "true"},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("testimage: build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if err := readBuildStream(resp.Body); err != nil {
		return fmt.Errorf("testimage: build %s: %w", tag, err)
	}
	return nil
}

// BuildHost is Build against the daemon at host ("" for the environment's).
func BuildHost(ctx context.Context, host, pkg, tag string) error {
	opts := []dockerclient.Opt{dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, dockerclient.WithHost(host))
	}
	cli, err := dockerclient.NewClientWithOpts(opts...)
	if err != nil {
		return fmt.Errorf("testimage: docker client: %w", err)
	}
	defer cli.Close()
	return Build(ctx, cli, pkg, tag)
}

func tarContext(files map[string][]byte) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"Dockerfile"} {
		if err := writeFile(tw, name, files[name], 0o644); err != nil {
			return nil, err
		}
	}
	for name, data := range files {
		if name == "Dockerfile" {
			continue
		}
		if err := writeFile(tw, name, data, 0o755); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

func writeFile(tw *tar.Writer, name string, data []byte, mode int64) error {
	hdr := &tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// readBuildStream drains the builder's JSON stream, returning its error.
func readBuildStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	var last string
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != "" {
			return fmt.Errorf("%s (last output: %s)", m.Error, strings.TrimSpace(last))
		}
		if m.Stream != "" {
			last = m.Stream
		}
	}
}
