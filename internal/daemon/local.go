package daemon

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ruche-platform/ruche/internal/runtime/docker"
)

// localChecker answers the API's deploy checks for the node this process
// runs on.
type localChecker struct{ rt *docker.Runtime }

func (c localChecker) CheckImage(ctx context.Context, ref string) error {
	ok, err := c.rt.ImagePresent(ctx, ref)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return c.rt.PullImage(ctx, ref, nil)
}

// CheckPort tries to bind the port: a port another program (or a container
// ruche does not manage) holds is refused before anything changes.
func (c localChecker) CheckPort(ctx context.Context, protocol, hostIP string, port uint16) error {
	addr := net.JoinHostPort(hostIP, strconv.Itoa(int(port)))
	switch protocol {
	case "udp":
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("already in use on this node")
		}
		return pc.Close()
	default:
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("already in use on this node")
		}
		return ln.Close()
	}
}

// openDocker connects to the Docker engine (host "" is DOCKER_HOST, else the
// default socket) and checks that it answers.
func openDocker(ctx context.Context, host string, logs docker.LogLimits) (*docker.Runtime, error) {
	rt, err := docker.New(docker.Config{Host: host, Logs: logs})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = rt.Ping(pctx)
	cancel()
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("cannot reach the Docker engine (is dockerd running?): %w", err)
	}
	return rt, nil
}

// newRegistry is a metrics registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
