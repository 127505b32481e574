package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"github.com/ruche-platform/ruche/internal/runtime"
)

// ImagePresent reports whether ref is in the daemon's image store.
func (r *Runtime) ImagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := r.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
}

// ImageCommand returns the image's entrypoint and command.
func (r *Runtime) ImageCommand(ctx context.Context, ref string) ([]string, []string, error) {
	in, err := r.cli.ImageInspect(ctx, ref)
	switch {
	case cerrdefs.IsNotFound(err):
		return nil, nil, fmt.Errorf("image %s: %w", ref, runtime.ErrNotFound)
	case err != nil:
		return nil, nil, fmt.Errorf("inspect image %s: %w", ref, err)
	case in.Config == nil:
		return nil, nil, nil
	}
	return in.Config.Entrypoint, in.Config.Cmd, nil
}

// pullMessage is one line of the daemon's pull progress stream.
type pullMessage struct {
	Status      string `json:"status"`
	ID          string `json:"id"`
	Progress    string `json:"progress"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// PullImage pulls ref, reporting progress lines such as
// "a1b2c3: Downloading [==>   ] 1.2MB/5MB". It fails within the pull timeout
// with an error wrapping runtime.ErrPull and naming the image.
func (r *Runtime) PullImage(ctx context.Context, ref string, progress func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, r.pullTimeout)
	defer cancel()
	fail := func(err error) error {
		return fmt.Errorf("%w: image %s not found locally and could not be pulled: %w", runtime.ErrPull, ref, err)
	}
	rc, err := r.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fail(err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m pullMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fail(err)
		}
		if m.Error != "" {
			return fail(errors.New(m.Error))
		}
		if progress != nil {
			progress(strings.TrimSpace(strings.Join(nonEmpty(m.ID, m.Status, m.Progress), " ")))
		}
	}
	// A stream that ends without error but leaves no image (a cut
	// connection) is a failure too.
	ok, err := r.ImagePresent(ctx, ref)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return fail(errors.New("pull ended without the image"))
	}
	return nil
}

func nonEmpty(ss ...string) []string {
	out := ss[:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
