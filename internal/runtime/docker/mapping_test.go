package docker

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/go-connections/nat"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
)

func TestContainerConfig(t *testing.T) {
	spec := runtime.ContainerSpec{
		Name: "p-web-1-abc", Image: "img:1", StopSignal: "SIGINT", StopGrace: 1500 * time.Millisecond, Init: true,
		Ports: []client.PortSpec{{Target: 80, Published: 8080, HostIP: "127.0.0.1"}, {Target: 53, Protocol: "udp"}},
		Mounts: []runtime.Mount{
			{Type: client.MountVolume, Source: "p_data", Target: "/data"},
			{Type: client.MountBind, Source: "/srv/x", Target: "/x", ReadOnly: true},
			{Type: client.MountTmpfs, Target: "/tmp"},
		},
		Networks:    []runtime.Attachment{{Network: "ruche-p-default", Aliases: []string{"web"}}, {Network: "ruche-p-back"}},
		Healthcheck: &client.HealthcheckSpec{Test: []string{"CMD", "true"}, Interval: client.Duration(time.Second), Retries: 2},
		NanoCPUs:    5e8, Memory: 64 << 20,
	}
	cfg, host, netcfg, err := containerConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *cfg.StopTimeout, 2; got != want {
		t.Errorf("stop timeout: got %d, want %d (rounded up)", got, want)
	}
	if got, want := host.RestartPolicy.Name, "no"; string(got) != want {
		t.Errorf("restart policy: got %q, want %q", got, want)
	}
	wantPorts := nat.PortMap{"80/tcp": {{HostIP: "127.0.0.1", HostPort: "8080"}}, "53/udp": {{}}}
	if !reflect.DeepEqual(host.PortBindings, wantPorts) {
		t.Errorf("ports: got %v, want %v", host.PortBindings, wantPorts)
	}
	if got, want := host.Binds, []string{"/srv/x:/x:ro"}; !reflect.DeepEqual(got, want) {
		t.Errorf("binds: got %v, want %v", got, want)
	}
	if got := len(host.Mounts); got != 2 {
		t.Errorf("mounts: got %d, want 2 (volume, tmpfs)", got)
	}
	if got, want := string(host.NetworkMode), "ruche-p-default"; got != want {
		t.Errorf("network mode: got %q, want %q", got, want)
	}
	if len(netcfg.EndpointsConfig) != 1 || !reflect.DeepEqual(netcfg.EndpointsConfig["ruche-p-default"].Aliases, []string{"web"}) {
		t.Errorf("endpoints: got %v, want the first network only", netcfg.EndpointsConfig)
	}
	if host.Init == nil || !*host.Init || host.NanoCPUs != 5e8 || host.Memory != 64<<20 {
		t.Errorf("init/resources: got %v %d %d", host.Init, host.NanoCPUs, host.Memory)
	}
	if cfg.Healthcheck == nil || cfg.Healthcheck.Interval != time.Second || cfg.Healthcheck.Retries != 2 {
		t.Errorf("healthcheck: got %+v", cfg.Healthcheck)
	}

	spec.Mounts = []runtime.Mount{{Type: "nfs", Target: "/x"}}
	if _, _, _, err := containerConfig(spec); err == nil {
		t.Error("unknown mount type: got nil error")
	}
}

func TestPortBindings(t *testing.T) {
	pm := nat.PortMap{
		// Docker 20.10 gives IPv4 and IPv6 their own ephemeral port.
		"8080/tcp": {{HostIP: "::", HostPort: "49151"}, {HostIP: "0.0.0.0", HostPort: "49153"}},
		"53/udp":   {{HostIP: "127.0.0.1", HostPort: "5353"}},
		"9000/tcp": nil, // exposed, not published
	}
	got := portBindings(pm)
	want := []client.PortBinding{
		{Target: 53, Published: 5353, Protocol: "udp", HostIP: "127.0.0.1"},
		{Target: 8080, Published: 49153, Protocol: "tcp", HostIP: "0.0.0.0"},
		{Target: 8080, Published: 49151, Protocol: "tcp", HostIP: "::"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestFromMessage(t *testing.T) {
	tests := []struct {
		action     string
		wantOK     bool
		wantAction string
		wantHealth string
	}{
		{"start", true, "start", ""},
		{"die", true, "die", ""},
		{"health_status: unhealthy", true, "health_status", "unhealthy"},
		{"exec_start: /hello health", false, "", ""},
		{"attach", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			ev, ok := fromMessage(events.Message{Action: events.Action(tt.action), Actor: events.Actor{ID: "c1"}})
			if ok != tt.wantOK || ev.Action != tt.wantAction || ev.Health != tt.wantHealth {
				t.Errorf("got %v %q %q, want %v %q %q", ok, ev.Action, ev.Health, tt.wantOK, tt.wantAction, tt.wantHealth)
			}
		})
	}
}

// TestIsGone: List skips a container removed between its listing and its
// inspection, whose error Inspect has already wrapped.
func TestIsGone(t *testing.T) {
	daemonNotFound := fmt.Errorf("Error response from daemon: No such container: c1: %w", cerrdefs.ErrNotFound)
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "daemon's not found", err: daemonNotFound, want: true},
		{name: "wrapped by Inspect", err: fmt.Errorf("inspect container c1: %w", notFound(daemonNotFound)), want: true},
		{name: "removal in progress", err: errors.New("removal of container c1 is already in progress"), want: true},
		{name: "other", err: errors.New("connection refused"), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isGone(tt.err); got != tt.want {
				t.Errorf("isGone(%v): got %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
