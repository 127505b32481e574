package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// TestBackupRestore: `ruche backup create` on a running platform, then
// `ruche backup restore` into a new data dir and `ruche up` on it: the same
// projects, services and routes come back, a deploy made after the backup
// does not, and the running replicas are adopted, not recreated.
func TestBackupRestore(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-backup-")
	cleanupProject(t, p, proj)
	host := proj + ".ruche.test"
	p.must("deploy", "-f", routedFile(t, "1", host, "none"), "-p", proj)
	wantSpecs, wantRoutes := specsAndRoutes(t, p, proj)
	before := containersOf(t, proj)
	if len(before) != 3 {
		t.Fatalf("got %d containers, want 3", len(before))
	}

	file := filepath.Join(t.TempDir(), "cluster.backup")
	out := p.must("backup", "create", file)
	if !strings.Contains(out, "keep it private") {
		t.Fatalf("backup create does not warn that the file holds keys:\n%s", out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	late := uniq("e2e-late-")
	cleanupProject(t, p, late)
	p.must("deploy", "-f", webFile(t, "1", 1), "-p", late)
	p.stop()

	newDir := filepath.Join(t.TempDir(), "restored")
	peer := freePort(t)
	restore := exec.Command(rucheBin, "backup", "restore", file, "--data-dir", newDir, "--store-peer-addr", peer,
		"--api-addr", flagValue(p.args, "--api-addr"))
	b, err := restore.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "now run: ruche up --data-dir "+newDir) {
		t.Fatalf("backup restore: %v\n%s", err, b)
	}
	if b, err := exec.Command(rucheBin, "backup", "restore", file, "--data-dir", newDir).CombinedOutput(); err == nil ||
		!strings.Contains(string(b), "already holds a manager's files") || !strings.Contains(string(b), "nothing was written") {
		t.Fatalf("restore over a restored dir: %v\n%s", err, b)
	}

	// The same node, API address and ingress ports, on the restored data dir.
	p.dataDir = newDir
	p.args = setFlag(setFlag(setFlag(p.args, "--data-dir", newDir), "--store-peer-addr", peer), "--store-addr", freePort(t))
	p.start()
	gotSpecs, gotRoutes := specsAndRoutes(t, p, proj)
	if gotSpecs != wantSpecs {
		t.Errorf("services after restore:\n got %s\nwant %s", gotSpecs, wantSpecs)
	}
	if gotRoutes != wantRoutes {
		t.Errorf("routes after restore:\n got %s\nwant %s", gotRoutes, wantRoutes)
	}
	if _, _, code := p.ruche("ps", late); code == 0 {
		t.Errorf("project %s, deployed after the backup, exists after the restore", late)
	}
	eventually(t, "restored project ready", 60*time.Second, func() bool {
		pr := p.project(proj)
		for _, s := range pr.Services {
			if s.Ready != s.Desired {
				return false
			}
		}
		return len(pr.Services) == 2
	})
	after := containersOf(t, proj)
	for task, id := range before {
		if after[task] != id {
			t.Errorf("replica %s was recreated after the restore: %s -> %s", task, id, after[task])
		}
	}
}

// specsAndRoutes is what a backup must give back, as JSON: each service's
// spec and version, and the project's routes.
func specsAndRoutes(t *testing.T, p *platform, proj string) (string, string) {
	t.Helper()
	type svc struct {
		Name    string
		Spec    client.ServiceSpec
		Version int64
		Desired int
	}
	var svcs []svc
	for _, s := range p.project(proj).Services {
		svcs = append(svcs, svc{s.Name, s.Spec, s.Version, s.Desired})
	}
	var routes []client.Route
	if err := json.Unmarshal([]byte(p.must("routes", "-o", "json")), &routes); err != nil {
		t.Fatal(err)
	}
	var mine []client.Route
	for _, r := range routes {
		if r.Project == proj {
			r.Replicas = nil // live state, not configuration
			mine = append(mine, r)
		}
	}
	if len(mine) != 2 {
		t.Fatalf("project %s has %d routes, want 2", proj, len(mine))
	}
	a, _ := json.Marshal(svcs)
	b, _ := json.Marshal(mine)
	return string(a), string(b)
}

func flagValue(args []string, name string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}

func setFlag(args []string, name, value string) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == name {
			out[i+1] = value
			return out
		}
	}
	return append(out, name, value)
}
