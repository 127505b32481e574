package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/ruche-platform/ruche/internal/runtime"
)

// Logs copies a container's output. Containers without a TTY have stdout
// and stderr multiplexed on one stream (stdcopy); with a TTY it is one raw
// stream, copied to stdout.
func (r *Runtime) Logs(ctx context.Context, id string, opts runtime.LogOptions, stdout, stderr io.Writer) error {
	insp, err := r.cli.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", short(id), notFound(err))
	}
	lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow}
	if !opts.Since.IsZero() {
		lo.Since = strconv.FormatFloat(float64(opts.Since.UnixNano())/1e9, 'f', 9, 64)
	}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	rc, err := r.cli.ContainerLogs(ctx, id, lo)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", short(id), notFound(err))
	}
	defer rc.Close()
	if insp.Config != nil && insp.Config.Tty {
		_, err = io.Copy(stdout, rc)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, rc)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s: %w", short(id), err)
	}
	return nil
}
