package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

func svc(name string, observed int64, state string, ready, desired, replicas int) client.Service {
	s := client.Service{Name: name, Ready: ready, Desired: desired,
		Update: client.UpdateStatus{State: state, ObservedRevision: observed, Version: 1}}
	for i := 0; i < replicas; i++ {
		s.Replicas = append(s.Replicas, client.Replica{Service: name, Slot: i + 1})
	}
	return s
}

func TestProgress(t *testing.T) {
	for _, tc := range []struct {
		name         string
		w            waitSpec
		p            client.Project
		wantDone     bool
		wantFailures int
		wantLine     string
	}{
		{"stale status is not trusted", waitSpec{rev: 10, services: []string{"web"}},
			client.Project{Services: []client.Service{svc("web", 9, client.UpdateCompleted, 3, 3, 3)}}, false, 0, "pending"},
		{"converged", waitSpec{rev: 10, services: []string{"web"}},
			client.Project{Services: []client.Service{svc("web", 10, client.UpdateCompleted, 3, 3, 3)}}, true, 0, "3/3 ready  completed"},
		{"still rolling", waitSpec{rev: 10, services: []string{"web"}},
			client.Project{Services: []client.Service{svc("web", 11, client.UpdateUpdating, 2, 3, 4)}}, false, 0, "updating"},
		{"rolled back is a failure", waitSpec{rev: 10, services: []string{"web"}},
			client.Project{Services: []client.Service{svc("web", 10, client.UpdateRolledBack, 3, 3, 3)}}, true, 1, "rolled_back"},
		{"removed service still has replicas", waitSpec{rev: 10, gone: []string{"old"}},
			client.Project{Services: []client.Service{svc("old", 0, "", 0, 0, 1)}}, false, 0, "removing, 1 replica(s) left"},
		{"removed service gone", waitSpec{rev: 10, gone: []string{"old"}},
			client.Project{}, true, 0, "removing, 0 replica(s) left"},
		{"project being removed", waitSpec{projectGone: true},
			client.Project{Removing: true}, false, 0, "removing networks"},
		{"project gone", waitSpec{projectGone: true},
			client.Project{}, true, 0, "0 replica(s) left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			g := &globals{stdout: &out}
			done, failures := g.progress(&tc.p, tc.w, map[string]string{})
			if done != tc.wantDone || len(failures) != tc.wantFailures {
				t.Fatalf("got done=%v failures=%v, want done=%v and %d failures", done, failures, tc.wantDone, tc.wantFailures)
			}
			if !strings.Contains(out.String(), tc.wantLine) {
				t.Fatalf("output %q lacks %q", out.String(), tc.wantLine)
			}
		})
	}
}

func TestProgressPrintsOnlyChanges(t *testing.T) {
	var out bytes.Buffer
	g := &globals{stdout: &out}
	last := map[string]string{}
	p := client.Project{Services: []client.Service{svc("web", 10, client.UpdateUpdating, 1, 3, 3)}}
	w := waitSpec{rev: 10, services: []string{"web"}}
	g.progress(&p, w, last)
	g.progress(&p, w, last)
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("the same view printed %d lines, want 1:\n%s", n, out.String())
	}
}

func TestSplitService(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		p, s string
	}{{"shop/web", true, "shop", "web"}, {"shop", false, "", ""}, {"/web", false, "", ""}, {"a/b/c", false, "", ""}} {
		p, s, err := splitService(tc.in)
		if (err == nil) != tc.ok || p != tc.p || s != tc.s {
			t.Errorf("splitService(%q) = %q, %q, %v", tc.in, p, s, err)
		}
	}
}

// TestProgressUnderJSON: with -o json, progress lines go to stderr and
// stdout keeps only the JSON.
func TestProgressUnderJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	g := &globals{stdout: &out, stderr: &errOut, output: "json"}
	p := client.Project{Services: []client.Service{svc("web", 10, client.UpdateUpdating, 1, 3, 3)}}
	g.progress(&p, waitSpec{rev: 10, services: []string{"web"}}, map[string]string{})
	if out.Len() != 0 || !strings.Contains(errOut.String(), "1/3 ready") {
		t.Errorf("stdout %q, stderr %q; want the progress line on stderr only", out.String(), errOut.String())
	}
}
