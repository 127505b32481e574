package cli

import (
	"testing"

	"github.com/ruche-platform/ruche/client"
)

func TestPortsColumn(t *testing.T) {
	got := ports([]client.PortBinding{
		{Target: 8080, Published: 8080, Protocol: "tcp"},
		{Target: 8080, Published: 40001, Protocol: "tcp", HostIP: "10.0.0.1", Route: true},
	})
	if want := "0.0.0.0:8080->8080/tcp,10.0.0.1:40001->8080/tcp(route)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
