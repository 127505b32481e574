package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRemoveServiceFromFile: a service that leaves the compose file leaves
// the platform; the others are untouched.
func TestRemoveServiceFromFile(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-two-")
	cleanupProject(t, p, proj)
	two := writeCompose(t, `
services:
  api:
    image: @IMAGE@
  worker:
    image: @IMAGE@
    deploy:
      replicas: 2
`)
	p.must("deploy", "-f", two, "-p", proj)
	before := containersOf(t, proj)
	if len(before) != 3 {
		t.Fatalf("got %d containers, want 3", len(before))
	}
	one := writeCompose(t, `
services:
  api:
    image: @IMAGE@
`)
	out := p.must("deploy", "-f", one, "-p", proj)
	if !strings.Contains(out, "- worker: remove 2 replica(s)") || !strings.Contains(out, "= api: unchanged") {
		t.Fatalf("deploy does not show the removal:\n%s", out)
	}
	pr := p.project(proj)
	if len(pr.Services) != 1 || pr.Services[0].Name != "api" {
		t.Fatalf("services after removal: %+v", pr.Services)
	}
	after := containersOf(t, proj)
	if len(after) != 1 {
		t.Fatalf("got %d containers, want 1", len(after))
	}
	for task, id := range after {
		if before[task] != id {
			t.Fatalf("the api replica was recreated: %s %s -> %s", task, before[task], id)
		}
	}
}

// TestLogsFollow: `ruche logs -f` streams lines written after it started,
// from a replica that started after it too.
func TestLogsFollow(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-follow-")
	cleanupProject(t, p, proj)
	p.must("deploy", "-f", webFile(t, "1", 1), "-p", proj)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rucheBin, "logs", "-f", proj+"/web")
	cmd.Env = append(os.Environ(), "RUCHE_CONFIG="+filepath.Join(p.dataDir, "admin.conf"))
	lines := startLines(t, cmd)
	defer func() { cancel(); cmd.Wait() }()
	p.must("scale", proj+"/web=2")
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("logs -f ended before web.2 logged")
			}
			if strings.HasPrefix(l, "web.2 | ") && strings.Contains(l, "listening on") {
				return
			}
		case <-ctx.Done():
			t.Fatal("logs -f did not show web.2 starting")
		}
	}
}
