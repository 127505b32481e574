package nodes

import (
	"reflect"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

func TestRegister(t *testing.T) {
	reg := client.Node{ID: "n1", Hostname: "box", Labels: map[string]string{"zone": "home", "disk": "hdd"},
		Role: "agent", Status: client.NodeReady, Availability: client.AvailabilityActive, Capacity: client.ResourceAmounts{CPUs: 2}}
	tests := []struct {
		name string
		old  *client.Node
		want client.Node
	}{
		{"new", nil, reg},
		{
			"managers keep role, availability, status and their labels",
			&client.Node{ID: "n1", Role: "manager+agent", Status: client.NodeDown, Availability: client.AvailabilityDrain, CertSerial: "0a",
				Labels:        map[string]string{"zone": "school", "ssd": "yes"},
				ManagerLabels: map[string]string{"zone": "school", "ssd": "yes"}, RemovedLabels: []string{"disk"},
				Load: &client.NodeLoad{CPU: 1}},
			client.Node{ID: "n1", Hostname: "box", Role: "manager+agent", Status: client.NodeDown, Availability: client.AvailabilityDrain, CertSerial: "0a",
				Labels:        map[string]string{"zone": "school", "ssd": "yes"},
				ManagerLabels: map[string]string{"zone": "school", "ssd": "yes"}, RemovedLabels: []string{"disk"},
				Capacity: client.ResourceAmounts{CPUs: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Register(tt.old, reg)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSetLabels(t *testing.T) {
	n := client.Node{Labels: map[string]string{"zone": "home", "disk": "hdd"}}
	SetLabels(&n, map[string]string{"ssd": "yes"}, []string{"disk"})
	want := client.Node{Labels: map[string]string{"zone": "home", "ssd": "yes"},
		ManagerLabels: map[string]string{"ssd": "yes"}, RemovedLabels: []string{"disk"}}
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("got %+v, want %+v", n, want)
	}
	SetLabels(&n, map[string]string{"disk": "ssd"}, []string{"ssd"})
	want = client.Node{Labels: map[string]string{"zone": "home", "disk": "ssd"},
		ManagerLabels: map[string]string{"disk": "ssd"}, RemovedLabels: []string{"ssd"}}
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("got %+v, want %+v", n, want)
	}
	// The agent registers again with its own labels: managers win.
	got := Register(&n, client.Node{Labels: map[string]string{"zone": "home", "disk": "hdd", "ssd": "no"}})
	if want := map[string]string{"zone": "home", "disk": "ssd"}; !reflect.DeepEqual(got.Labels, want) {
		t.Fatalf("labels after registration: got %v, want %v", got.Labels, want)
	}
}
