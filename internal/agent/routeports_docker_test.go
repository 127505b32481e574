package agent_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// TestDockerRoutePorts: with an advertise address (loopback here), a
// replica of a routed service gets the route's port published on it, marked
// in its status and answering there; the service's own published port stays
// unmarked; an agent restart adopts the container with the same binding.
func TestDockerRoutePorts(t *testing.T) {
	e := newEnv(t)
	e.advertise = "127.0.0.1"
	e.start()
	tk := e.task(1, "r1", client.ServiceSpec{
		Ports:       []client.PortSpec{{Target: 9090, HostIP: "127.0.0.1"}},
		Routes:      []client.RouteSpec{{Host: "rp.test", Port: 8080}},
		Healthcheck: healthcheck,
	})
	e.put(tk)
	st := e.waitState(tk.ID, client.StateRunning)
	route := routeBinding(t, st)
	if own := countOwn(st); own != 1 {
		t.Errorf("ports: got %+v, want the service's own binding unmarked beside the route one", st.Ports)
	}
	code, body, err := httpDo("GET", fmt.Sprintf("http://127.0.0.1:%d/", route.Published), "")
	if err != nil || code != 200 || !strings.Contains(body, "web") {
		t.Fatalf("GET through the route binding: %d %q %v", code, body, err)
	}

	e.stop()
	e.start()
	e.until("adopted replica reported with the same route binding", func() bool {
		st := e.status(tk.ID)
		for _, p := range st.Ports {
			if p.Route && p.Published == route.Published {
				return st.ContainerID == e.status(tk.ID).ContainerID
			}
		}
		return false
	}, func() string { return fmt.Sprintf("%+v", e.status(tk.ID).Ports) })
	if got := e.status(tk.ID).ContainerID; got != st.ContainerID {
		t.Errorf("container: got %s after the agent restart, want %s (adopted)", got, st.ContainerID)
	}
}

func routeBinding(t *testing.T, st client.ReplicaStatus) client.PortBinding {
	t.Helper()
	var out []client.PortBinding
	for _, p := range st.Ports {
		if p.Route {
			out = append(out, p)
		}
	}
	if len(out) != 1 || out[0].Target != 8080 || out[0].HostIP != "127.0.0.1" || out[0].Published == 0 || out[0].Protocol != "tcp" {
		t.Fatalf("route bindings: got %+v of %+v, want one 8080/tcp on 127.0.0.1", out, st.Ports)
	}
	return out[0]
}

func countOwn(st client.ReplicaStatus) int {
	n := 0
	for _, p := range st.Ports {
		if !p.Route && p.Target == 9090 && p.HostIP == "127.0.0.1" {
			n++
		}
	}
	return n
}
