package agent

import (
	"reflect"
	"testing"
	"testing/synctest"

	"github.com/ruche-platform/ruche/client"
)

func TestRoutePorts(t *testing.T) {
	private := false
	tests := []struct {
		name      string
		spec      client.ServiceSpec
		advertise string
		want      []client.PortSpec
		label     string
	}{
		{name: "no advertise address", spec: client.ServiceSpec{Routes: []client.RouteSpec{{Host: "a", Port: 80}}}},
		{name: "no route", spec: client.ServiceSpec{Ports: []client.PortSpec{{Target: 80, Published: 8080}}}, advertise: "10.0.0.1"},
		{
			name:      "one port per target, sorted",
			spec:      client.ServiceSpec{Routes: []client.RouteSpec{{Host: "b", Port: 9000}, {Host: "a", Port: 80}, {Host: "c", PathPrefix: "/x", Port: 80}}},
			advertise: "10.0.0.1",
			want:      []client.PortSpec{{Target: 80, Protocol: "tcp", HostIP: "10.0.0.1"}, {Target: 9000, Protocol: "tcp", HostIP: "10.0.0.1"}},
			label:     "10.0.0.1:80,10.0.0.1:9000",
		},
		{
			name:      "kept with the service's own ports",
			spec:      client.ServiceSpec{Ports: []client.PortSpec{{Target: 80, Published: 8080, HostIP: "127.0.0.1"}, {Target: 80, Protocol: "udp"}}, Routes: []client.RouteSpec{{Host: "a", Port: 80}}},
			advertise: "10.0.0.1",
			want:      []client.PortSpec{{Target: 80, Published: 8080, HostIP: "127.0.0.1"}, {Target: 80, Protocol: "udp"}, {Target: 80, Protocol: "tcp", HostIP: "10.0.0.1"}},
			label:     "10.0.0.1:80",
		},
		{
			name:      "already published on every address",
			spec:      client.ServiceSpec{Ports: []client.PortSpec{{Target: 80, Published: 8080}}, Routes: []client.RouteSpec{{Host: "a", Port: 80}, {Host: "b", Port: 81}}},
			advertise: "10.0.0.1",
			want:      []client.PortSpec{{Target: 80, Published: 8080}, {Target: 81, Protocol: "tcp", HostIP: "10.0.0.1"}},
			label:     "10.0.0.1:81",
		},
		{
			name:      "already published on the advertise address",
			spec:      client.ServiceSpec{Ports: []client.PortSpec{{Target: 80, HostIP: "10.0.0.1"}}, Routes: []client.RouteSpec{{Host: "a", Port: 80}}},
			advertise: "10.0.0.1",
		},
		{
			name:      "ipv6",
			spec:      client.ServiceSpec{Routes: []client.RouteSpec{{Host: "a", Port: 80}}},
			advertise: "fd00::1",
			want:      []client.PortSpec{{Target: 80, Protocol: "tcp", HostIP: "fd00::1"}},
			label:     "[fd00::1]:80",
		},
		{
			name: "private service", advertise: "10.0.0.1",
			spec: client.ServiceSpec{Routes: []client.RouteSpec{{Host: "a", Port: 80}}, Ruche: client.RucheExtension{Public: &private}},
		},
		{name: "not an IP address", spec: client.ServiceSpec{Routes: []client.RouteSpec{{Host: "a", Port: 80}}}, advertise: "node1.example.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := task(1, "a1", tt.spec)
			spec := containerSpec(tk, nil)
			addRoutePorts(&spec, tk, tt.advertise)
			want := tt.want
			if want == nil {
				want = tt.spec.Ports
			}
			if !reflect.DeepEqual(spec.Ports, want) {
				t.Errorf("ports: got %+v, want %+v", spec.Ports, want)
			}
			if got := spec.Labels[LabelRoutePorts]; got != tt.label {
				t.Errorf("label: got %q, want %q", got, tt.label)
			}
		})
	}
}

func TestMarkRoutePorts(t *testing.T) {
	labels := map[string]string{LabelRoutePorts: "10.0.0.1:80,10.0.0.1:9000"}
	tests := []struct {
		name     string
		labels   map[string]string
		own      []client.PortSpec
		bindings []client.PortBinding
		want     []bool
	}{
		{
			name:     "no label: nothing marked",
			bindings: []client.PortBinding{{Target: 80, Published: 40000, Protocol: "tcp", HostIP: "10.0.0.1"}},
			want:     []bool{false},
		},
		{
			name:   "route bindings marked, the service's own not",
			labels: labels,
			own:    []client.PortSpec{{Target: 80, Published: 8080}},
			bindings: []client.PortBinding{
				{Target: 80, Published: 8080, Protocol: "tcp", HostIP: "0.0.0.0"},
				{Target: 80, Published: 40000, Protocol: "tcp", HostIP: "10.0.0.1"},
				{Target: 9000, Published: 40001, Protocol: "tcp", HostIP: "10.0.0.1"},
				{Target: 9000, Published: 40002, Protocol: "udp", HostIP: "10.0.0.1"},
			},
			want: []bool{false, true, true, false},
		},
		{
			name:     "own fixed port on the advertise address",
			labels:   labels,
			own:      []client.PortSpec{{Target: 80, Published: 8080, HostIP: "10.0.0.1"}},
			bindings: []client.PortBinding{{Target: 80, Published: 8080, Protocol: "tcp", HostIP: "10.0.0.1"}, {Target: 80, Published: 40000, Protocol: "tcp", HostIP: "10.0.0.1"}},
			want:     []bool{false, true},
		},
		{
			name:     "other address",
			labels:   labels,
			bindings: []client.PortBinding{{Target: 80, Published: 40000, Protocol: "tcp", HostIP: "10.0.0.2"}},
			want:     []bool{false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := markRoutePorts(tt.labels, tt.own, tt.bindings)
			var marks []bool
			for _, b := range got {
				marks = append(marks, b.Route)
			}
			if !reflect.DeepEqual(marks, tt.want) {
				t.Errorf("route marks: got %v, want %v", marks, tt.want)
			}
			for _, b := range tt.bindings {
				if b.Route {
					t.Fatal("input bindings changed")
				}
			}
		})
	}
}

// TestRoutePortsReported runs a replica of a routed service on an agent with
// an advertise address: its status shows the route binding, marked.
func TestRoutePortsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.advertise = "10.0.0.1"
		h.start()
		defer h.stop()
		tk := task(1, "a1", client.ServiceSpec{
			Ports:  []client.PortSpec{{Target: 8080, Published: 8080}},
			Routes: []client.RouteSpec{{Host: "a.example", Port: 80}},
		})
		h.put(tk)
		st := h.waitState(tk.ID, client.StateRunning)
		var route, own int
		for _, p := range st.Ports {
			switch {
			case p.Route && p.Target == 80 && p.HostIP == "10.0.0.1" && p.Published != 0:
				route++
			case !p.Route && p.Target == 8080 && p.Published == 8080:
				own++
			default:
				t.Errorf("unexpected binding %+v", p)
			}
		}
		if route != 1 || own != 1 {
			t.Errorf("ports: got %+v, want one route binding on 10.0.0.1 and the service's own 8080", st.Ports)
		}
	})
}
