package docker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/docker/docker/api/types/container"
	units "github.com/docker/go-units"
)

// Replica logs are bounded. Docker's default log driver, json-file, keeps a
// container's output in one file that grows until the disk is full unless
// the engine's daemon.json sets max-size; a platform that runs services for
// months must not depend on that. When the engine's default driver keeps
// files on the node (json-file or local), the driver creates containers
// with that driver and max-size / max-file set (Config.Logs). Any other
// default driver (journald, syslog, fluentd, ...)
// is the operator's choice of where logs go, and is left alone; so is
// everything when Logs.MaxSize is empty.

// LogLimits bound each container's log files.
type LogLimits struct {
	// MaxSize is the size of one file in Docker's units ("10m", "1g");
	// "" leaves the engine's own setting.
	MaxSize string
	// MaxFiles is how many files are kept, the current one included.
	MaxFiles int
}

// rotatingDrivers are the log drivers that write files on the node and
// take max-size and max-file.
var rotatingDrivers = map[string]bool{"json-file": true, "local": true}

// Check reports limits that Docker would refuse: a size not in its units
// or not positive, fewer than one file.
func (l LogLimits) Check() error {
	if l.MaxSize == "" {
		return nil
	}
	n, err := units.RAMInBytes(l.MaxSize)
	if err != nil || n <= 0 {
		return fmt.Errorf("container log size %q: want a positive size such as 10m or 1g, or \"\" for the engine's own setting", l.MaxSize)
	}
	if l.MaxFiles < 1 {
		return fmt.Errorf("container log files %d: want at least 1", l.MaxFiles)
	}
	return nil
}

// logConfig is the LogConfig of the containers this driver creates: the
// engine's default when no limit is set or its default driver does not
// write rotating files; asked of the engine once, again after a failure.
func (r *Runtime) logConfig(ctx context.Context) (container.LogConfig, error) {
	if r.logs.MaxSize == "" {
		return container.LogConfig{}, nil
	}
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if r.logDriver == "" {
		info, err := r.cli.Info(ctx)
		if err != nil {
			return container.LogConfig{}, fmt.Errorf("docker info (log driver): %w", err)
		}
		r.logDriver = info.LoggingDriver
	}
	return r.logs.config(r.logDriver), nil
}

// config is the LogConfig for an engine whose default log driver is driver.
func (l LogLimits) config(driver string) container.LogConfig {
	if !rotatingDrivers[driver] || l.MaxSize == "" {
		return container.LogConfig{}
	}
	return container.LogConfig{Type: driver, Config: map[string]string{
		"max-size": l.MaxSize,
		"max-file": strconv.Itoa(l.MaxFiles),
	}}
}
