package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// TestPsAll: a replica being stopped is listed as stopping; one already
// shut down only with --all. The manager forgets a shut-down replica at
// once (the controller deletes its task), so the help must not promise a
// history of them: it says so and points to `ruche events`.
func TestPsAll(t *testing.T) {
	replica := func(slot int, desired, state string) client.Replica {
		return client.Replica{Project: "shop", Service: "web", Slot: slot, DesiredState: desired, Status: client.ReplicaStatus{State: state}}
	}
	conf := fakeAPI(t, answer(client.Project{Name: "shop", Services: []client.Service{{Name: "web", Replicas: []client.Replica{
		replica(1, client.DesiredRunning, client.StateRunning),
		replica(2, client.DesiredShutdown, client.StateRunning),
		replica(3, client.DesiredShutdown, client.StateShutdown),
	}}}}))
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"ps", "shop"}, []string{"web.1", "web.2    running (stopping)"}, []string{"web.3"}},
		{[]string{"ps", "-a", "shop"}, []string{"web.1", "web.2    running (stopping)", "web.3    shutdown"}, nil},
		{[]string{"ps", "--help"}, []string{"Once it has shut down, the manager forgets it", "ruche events -p <project>", "not yet forgotten"}, []string{"already shut down"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := Main(append([]string{"--config", conf}, tc.args...), &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("got\n%s\nwant it to hold %q", out.String(), w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("got\n%s\nwant no %q", out.String(), n)
				}
			}
		})
	}
}
