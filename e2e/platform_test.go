package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	dockerclient "github.com/docker/docker/client"

	"github.com/ruche-platform/ruche/client"
)

func uniq(prefix string) string {
	b := make([]byte, 3)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func docker(t *testing.T) *dockerclient.Client {
	t.Helper()
	cli, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// containersOf lists the Docker containers of a project, running or not.
func containersOf(t *testing.T, project string) map[string]string {
	t.Helper()
	list, err := docker(t).ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "ruche.project="+project))})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list {
		out[c.Labels["ruche.task"]] = c.ID
	}
	return out
}

func volumeExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := docker(t).VolumeInspect(context.Background(), name)
	return err == nil
}

// cleanupProject removes what a test deployed, volumes included, even when
// it failed half-way.
func cleanupProject(t *testing.T, p *platform, project string) {
	t.Cleanup(func() {
		if p.cmd != nil {
			p.ruche("rm", project, "--volumes", "--timeout", "60s")
		}
		cli := docker(t)
		ctx := context.Background()
		for _, id := range containersOf(t, project) {
			cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		}
		vols, _ := cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "ruche.project="+project))})
		for _, v := range vols.Volumes {
			cli.VolumeRemove(ctx, v.Name, true)
		}
	})
}

const webCompose = `
services:
  web:
    image: @IMAGE@
    environment:
      HELLO_VERSION: "@VERSION@"
    ports: ["8080"]
    healthcheck:
      test: ["CMD", "/hello", "health"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: @REPLICAS@
      update_config:
        parallelism: 1
        order: start-first
        monitor: 2s
      restart_policy:
        delay: 500ms
`

func webFile(t *testing.T, version string, replicas int) string {
	body := strings.NewReplacer("@VERSION@", version, "@REPLICAS@", fmt.Sprint(replicas)).Replace(webCompose)
	return writeCompose(t, body)
}

// TestDeployScaleRemove: deploy, reach every replica, redeploy unchanged,
// dry run, scale up and down (highest slots go first), remove.
func TestDeployScaleRemove(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-web-")
	cleanupProject(t, p, proj)

	out := p.must("deploy", "-f", webFile(t, "1", 3), "-p", proj)
	if !strings.Contains(out, "3/3 ready") || !strings.Contains(out, "converged") {
		t.Fatalf("deploy output lacks progress:\n%s", out)
	}
	web := service(t, p.project(proj), "web")
	if got := len(running(web)); got != 3 || web.Ready != 3 {
		t.Fatalf("got %d replicas, %d ready; want 3, 3", got, web.Ready)
	}
	for _, r := range running(web) {
		code, body := get(t, hostPort(t, r), "/")
		if want := fmt.Sprintf("hello from web.%d", r.Slot); code != 200 || !strings.Contains(body, want) {
			t.Fatalf("%s answered %d %q, want %q", r.Name(), code, body, want)
		}
	}

	if out := p.must("deploy", "-f", webFile(t, "1", 3), "-p", proj); !strings.Contains(out, "nothing to do") {
		t.Fatalf("unchanged redeploy did something:\n%s", out)
	}
	out = p.must("deploy", "-f", webFile(t, "2", 3), "-p", proj, "--dry-run")
	if !strings.Contains(out, "~ web: update environment") {
		t.Fatalf("dry run does not show the update:\n%s", out)
	}
	if v := service(t, p.project(proj), "web").Version; v != 1 {
		t.Fatalf("dry run changed the version to %d", v)
	}

	p.must("scale", proj+"/web=5")
	if web := service(t, p.project(proj), "web"); web.Ready != 5 {
		t.Fatalf("after scale 5: %d ready", web.Ready)
	}
	p.must("scale", proj+"/web=2")
	web = service(t, p.project(proj), "web")
	var slots []int
	for _, r := range running(web) {
		slots = append(slots, r.Slot)
	}
	if fmt.Sprint(slots) != "[1 2]" {
		t.Fatalf("after scale 2 the slots left are %v, want [1 2]", slots)
	}
	eventually(t, "surplus containers removed", 30*time.Second, func() bool { return len(containersOf(t, proj)) == 2 })

	p.must("rm", proj)
	if n := len(containersOf(t, proj)); n != 0 {
		t.Fatalf("%d containers left after rm", n)
	}
	if _, _, code := p.ruche("ps", proj); code == 0 {
		t.Fatal("ps of a removed project succeeded")
	}
}

// TestCrashRestartsWithBackoff: a replica that exits is restarted by its
// restart policy, and the restarts are counted.
func TestCrashRestartsWithBackoff(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-crash-")
	cleanupProject(t, p, proj)
	file := writeCompose(t, `
services:
  crashy:
    image: @IMAGE@
    environment:
      HELLO_CRASH_AFTER: 1s
    deploy:
      restart_policy:
        condition: on-failure
        delay: 200ms
`)
	p.must("deploy", "-f", file, "-p", proj, "--detach")
	eventually(t, "two restarts", 60*time.Second, func() bool {
		rs := running(service(t, p.project(proj), "crashy"))
		return len(rs) == 1 && rs[0].Status.Restarts >= 2
	})
	ids := containersOf(t, proj)
	if len(ids) != 1 {
		t.Fatalf("restarts made %d containers, want the same one restarted", len(ids))
	}
}

// TestFailedUpdateRollsBack: an update whose replicas fail their
// healthcheck is rolled back by itself; deploy exits non-zero and says so;
// the old version serves again.
func TestFailedUpdateRollsBack(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-rollback-")
	cleanupProject(t, p, proj)
	p.must("deploy", "-f", webFile(t, "1", 2), "-p", proj)

	bad := strings.Replace(webCompose, `HELLO_VERSION: "@VERSION@"`, `HELLO_VERSION: "2"
      HELLO_UNHEALTHY: "1"`, 1)
	file := writeCompose(t, strings.Replace(bad, "@REPLICAS@", "2", 1))
	out, errOut, code := p.ruche("deploy", "-f", file, "-p", proj)
	if code != 1 {
		t.Fatalf("deploy of a failing version: exit %d, want 1\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out+errOut, "rolled_back") {
		t.Fatalf("deploy does not say it rolled back:\n%s%s", out, errOut)
	}
	web := service(t, p.project(proj), "web")
	if web.Spec.Environment["HELLO_VERSION"] != "1" || web.Ready != 2 {
		t.Fatalf("after rollback: spec version %q, %d ready", web.Spec.Environment["HELLO_VERSION"], web.Ready)
	}
	for _, r := range running(web) {
		if _, body := get(t, hostPort(t, r), "/"); !strings.Contains(body, "version 1") {
			t.Fatalf("%s serves %q after rollback", r.Name(), body)
		}
	}
	// A manual rollback goes back to the failed spec's predecessor: here
	// the record's previous spec is the failed one, so rollback is refused
	// only when there is none. Check the command answers sensibly.
	if _, errOut, code := p.ruche("rollback", "nope/web"); code == 0 || !strings.Contains(errOut, "no such service") {
		t.Fatalf("rollback of an unknown service: exit %d %s", code, errOut)
	}
}

// TestRestartAdoptsContainers: stopping and starting `ruche up` keeps the
// projects and adopts the running containers instead of recreating them.
func TestRestartAdoptsContainers(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-adopt-")
	cleanupProject(t, p, proj)
	file := webFile(t, "1", 2)
	p.must("deploy", "-f", file, "-p", proj)
	before := containersOf(t, proj)

	p.stop()
	if after := containersOf(t, proj); len(after) != 2 {
		t.Fatalf("stopping ruche up left %d containers, want 2 still there", len(after))
	}
	p.start()
	web := service(t, p.project(proj), "web")
	if web.Version != 1 || len(running(web)) != 2 {
		t.Fatalf("after restart: version %d, %d replicas", web.Version, len(running(web)))
	}
	eventually(t, "replicas ready after restart", 30*time.Second, func() bool {
		return service(t, p.project(proj), "web").Ready == 2
	})
	if after := containersOf(t, proj); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("containers changed across the restart:\nbefore %v\nafter  %v", before, after)
	}
	if out := p.must("deploy", "-f", file, "-p", proj); !strings.Contains(out, "nothing to do") {
		t.Fatalf("redeploy after restart did something:\n%s", out)
	}
}

// TestVolumesAndSecrets: a named volume's data survives the replica's
// replacement and `ruche rm` without --volumes; --volumes deletes it.
// A secret is mounted as a file.
func TestVolumesAndSecrets(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-data-")
	cleanupProject(t, p, proj)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw.txt"), []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	compose := `
services:
  store:
    image: @IMAGE@
    environment:
      HELLO_DATA_DIR: /data
      HELLO_READ_FILES: "1"
      HELLO_VERSION: "@VERSION@"
    ports: ["8080"]
    volumes: ["data:/data"]
    secrets: [pw]
volumes:
  data: {}
secrets:
  pw:
    file: ./pw.txt
`
	write := func(version string) string {
		path := filepath.Join(dir, "compose.yml")
		os.WriteFile(path, []byte(strings.NewReplacer("@IMAGE@", image, "@VERSION@", version).Replace(compose)), 0o644)
		return path
	}
	port := func() uint16 {
		rs := running(service(t, p.project(proj), "store"))
		if len(rs) != 1 {
			t.Fatalf("replicas %+v", rs)
		}
		return hostPort(t, rs[0])
	}
	p.must("deploy", "-f", write("1"), "-p", proj)
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://127.0.0.1:%d/data/note", port()), strings.NewReader("kept"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode >= 300 {
		t.Fatalf("PUT /data/note: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, body := get(t, port(), "/file?path=/run/secrets/pw"); code != 200 || body != "s3cret" {
		t.Fatalf("secret file: %d %q", code, body)
	}

	p.must("deploy", "-f", write("2"), "-p", proj) // replaces the replica
	if _, body := get(t, port(), "/data/note"); body != "kept" {
		t.Fatalf("after an update the volume holds %q", body)
	}
	p.must("rm", proj)
	if !volumeExists(t, proj+"_data") {
		t.Fatal("rm without --volumes deleted the volume")
	}
	p.must("deploy", "-f", write("2"), "-p", proj)
	if _, body := get(t, port(), "/data/note"); body != "kept" {
		t.Fatalf("after rm and redeploy the volume holds %q", body)
	}
	p.must("rm", proj, "--volumes")
	eventually(t, "volume deleted by rm --volumes", 30*time.Second, func() bool { return !volumeExists(t, proj+"_data") })
}

// TestBadInput: each mistake gets one readable line and a non-zero exit,
// and changes nothing.
func TestBadInput(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-bad-")
	cleanupProject(t, p, proj)
	busy, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		name, compose, want string
	}{
		{"malformed yaml", "services:\n  web:\n    image: [unclosed\n", "compose.yml:2: invalid YAML"},
		{"unknown key", "services:\n  web:\n    image: @IMAGE@\n    privileged: true\n", "privileged"},
		{"negative replicas", "services:\n  web:\n    image: @IMAGE@\n    deploy:\n      replicas: -1\n", "replicas"},
		// A registry on a refused loopback port: nothing leaves the machine.
		{"missing image", "services:\n  web:\n    image: 127.0.0.1:1/ruche-e2e-nosuch:1\n", "127.0.0.1:1/ruche-e2e-nosuch:1"},
		{"busy host port", fmt.Sprintf("services:\n  web:\n    image: @IMAGE@\n    ports: [\"%d:8080\"]\n", busyPort), fmt.Sprint(busyPort)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := p.ruche("deploy", "-f", writeCompose(t, tc.compose), "-p", proj)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			if !strings.HasPrefix(errOut, "ruche: ") || !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr %q does not name %q", errOut, tc.want)
			}
		})
	}
	if _, _, code := p.ruche("ps", proj); code == 0 {
		t.Fatal("a rejected deploy created the project")
	}

	bad := filepath.Join(t.TempDir(), "bad.conf")
	cfg, err := client.LoadConfig(filepath.Join(p.dataDir, "admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Token = "ruche_wrong"
	cfg.Write(bad)
	if _, errOut, code := p.ruche("--config", bad, "status"); code != 1 || !strings.Contains(errOut, "invalid token") {
		t.Fatalf("wrong token: exit %d %q", code, errOut)
	}
	if _, errOut, code := p.ruche("scale", proj+"/web=-2"); code != 1 || !strings.Contains(errOut, "replicas") {
		t.Fatalf("negative scale: exit %d %q", code, errOut)
	}
	// The daemon is still there.
	p.must("status")
}

// TestLogsEventsMetrics: logs are prefixed with their replica, events
// record the deploy, /metrics serves the platform's metrics.
func TestLogsEventsMetrics(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-logs-")
	cleanupProject(t, p, proj)
	p.must("deploy", "-f", webFile(t, "1", 2), "-p", proj)
	eventually(t, "both replicas in the logs", 30*time.Second, func() bool {
		out := p.must("logs", proj+"/web")
		return strings.Contains(out, "web.1 | ") && strings.Contains(out, "web.2 | ") && strings.Contains(out, "listening on")
	})
	if out := p.must("events", "-p", proj); !strings.Contains(out, "applied") {
		t.Fatalf("events lack the deploy:\n%s", out)
	}
	cfg, _ := client.LoadConfig(filepath.Join(p.dataDir, "admin.conf"))
	body := fetchMetrics(t, cfg)
	for _, m := range []string{"ruche_deploys_total", "ruche_reconcile_passes_total", "ruche_replicas", "ruche_api_request_duration_seconds"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}
