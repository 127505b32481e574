package cli

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/ruche-platform/ruche/internal/runtime/docker"
)

// addContainerLogFlags adds the bounds of the replicas' log files, for
// `ruche up` and `ruche agent`; the returned check refuses bad values
// before anything starts.
func addContainerLogFlags(f *pflag.FlagSet, l *docker.LogLimits) func() error {
	f.StringVar(&l.MaxSize, "container-log-max-size", "10m",
		`largest log file of a replica's container before it is rotated, when the engine's log driver writes files (json-file, local); "" leaves the engine's setting`)
	f.IntVar(&l.MaxFiles, "container-log-max-files", 3, "log files kept per container, the current one included")
	return func() error {
		if err := l.Check(); err != nil {
			return fmt.Errorf("--container-log-max-size / --container-log-max-files: %w", err)
		}
		return nil
	}
}
