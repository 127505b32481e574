package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// curl runs the real curl, resolving host to the platform's loopback
// ingress, and returns its stdout.
func curl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is missing (make test installs it)")
		}
		t.Skip("curl is missing")
	}
	out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "10"}, args...)...).Output()
	return string(out), err
}

func portOf(t *testing.T, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

const routedCompose = `
services:
  web:
    image: @IMAGE@
    environment:
      HELLO_VERSION: "@VERSION@"
    healthcheck:
      test: ["CMD", "/hello", "health"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 2
      update_config:
        order: start-first
        monitor: 1s
    x-ruche:
      routes:
        - host: @HOST@
          port: 8080
          tls: @TLS@
  legacy:
    image: @IMAGE@
    labels:
      traefik.http.routers.legacy.rule: Host(` + "`@LEGACY@`" + `)
      traefik.http.services.legacy.loadbalancer.server.port: "8080"
`

func routedFile(t *testing.T, version, host, tlsMode string) string {
	return writeCompose(t, strings.NewReplacer("@VERSION@", version, "@HOST@", host, "@TLS@", tlsMode,
		"@LEGACY@", "legacy."+host).Replace(routedCompose))
}

// TestIngressRoutesAndBalances: a route in ruche's own form and one in
// Traefik's labels both reach their replicas through the proxy; requests
// spread over the replicas; an unknown host gets a 404.
func TestIngressRoutesAndBalances(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-ing-")
	cleanupProject(t, p, proj)
	host := proj + ".ruche.test"
	p.must("deploy", "-f", routedFile(t, "1", host, "none"), "-p", proj)

	var routes []client.Route
	if err := json.Unmarshal([]byte(p.must("routes", "-o", "json")), &routes); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, r := range routes {
		if r.Project == proj {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("ruche routes lists %d routes of %s, want 2:\n%s", found, proj, p.must("routes"))
	}

	port := portOf(t, p.httpAddr)
	resolve := func(h string) string { return h + ":" + port + ":127.0.0.1" }
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		out, err := curl(t, "--resolve", resolve(host), "http://"+host+":"+port+"/")
		if err != nil || !strings.Contains(out, "hello from web.") {
			t.Fatalf("GET through the proxy: %v %q", err, out)
		}
		seen[strings.Fields(out)[2]] = true
	}
	if !seen["web.1"] || !seen["web.2"] {
		t.Fatalf("20 requests reached %v, want both replicas", seen)
	}
	out, err := curl(t, "--resolve", resolve("legacy."+host), "http://legacy."+host+":"+port+"/")
	if err != nil || !strings.Contains(out, "hello from legacy.1") {
		t.Fatalf("Traefik-labelled route: %v %q", err, out)
	}
	code, err := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "--resolve", resolve("nobody.ruche.test"), "http://nobody.ruche.test:"+port+"/")
	if err != nil || code != "404" {
		t.Fatalf("unknown host: %v %q, want 404", err, code)
	}
}

// TestIngressTLSInternalHTTP2: a route with tls: internal is served over
// HTTPS with a certificate of the cluster CA, over HTTP/2; plain HTTP is
// redirected.
func TestIngressTLSInternalHTTP2(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-tls-")
	cleanupProject(t, p, proj)
	host := proj + ".ruche.test"
	p.must("deploy", "-f", routedFile(t, "1", host, "internal"), "-p", proj)
	ca := filepath.Join(p.dataDir, "pki", "ca.crt")
	port := portOf(t, p.httpsAddr)
	var out string
	var err error
	eventually(t, "certificate served", 30*time.Second, func() bool {
		out, err = curl(t, "--http2", "--cacert", ca, "-w", "\n%{http_version}", "--resolve", host+":"+port+":127.0.0.1", "https://"+host+":"+port+"/")
		return err == nil
	})
	if !strings.Contains(out, "hello from web.") || !strings.HasSuffix(strings.TrimSpace(out), "\n2") {
		t.Fatalf("HTTPS with HTTP/2: %q", out)
	}
	hport := portOf(t, p.httpAddr)
	code, err := curl(t, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--resolve", host+":"+hport+":127.0.0.1", "http://"+host+":"+hport+"/x")
	if err != nil || !strings.HasPrefix(code, "308 https://"+host) {
		t.Fatalf("plain HTTP: %v %q, want a 308 to https", err, code)
	}
}

// load sends mixed GET and POST requests at rate per second through the
// proxy until stop is closed, and counts what failed.
type load struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	errs         map[string]int
	done         chan struct{}
}

func runLoad(t *testing.T, addr, host string, rate int, getOnly bool, stop <-chan struct{}) *load {
	l := &load{errs: map[string]int{}, done: make(chan struct{})}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	go func() {
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				wg.Wait()
				tr.CloseIdleConnections()
				close(l.done)
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				l.sent.Add(1)
				var resp *http.Response
				var err error
				if getOnly || i%2 == 0 {
					resp, err = c.Get("http://" + host + "/")
				} else {
					resp, err = c.Post("http://"+host+"/echo", "text/plain", strings.NewReader(fmt.Sprintf("req %d", i)))
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					l.errs[err.Error()]++
					l.mu.Unlock()
				}
			}(i)
		}
	}()
	return l
}

func (l *load) wait() { <-l.done }

// TestIngressNoFailedRequests: under 300 requests/s of mixed GET and POST,
// a rolling update and a scale 2→1→2 fail no request; a replica killed
// with SIGKILL fails no GET.
func TestIngressNoFailedRequests(t *testing.T) {
	p := startPlatform(t)
	proj := uniq("e2e-roll-")
	cleanupProject(t, p, proj)
	host := proj + ".ruche.test"
	p.must("deploy", "-f", routedFile(t, "1", host, "none"), "-p", proj)

	stop := make(chan struct{})
	l := runLoad(t, p.httpAddr, host, 300, false, stop)
	time.Sleep(2 * time.Second)
	p.must("deploy", "-f", routedFile(t, "2", host, "none"), "-p", proj)
	p.must("scale", proj+"/web=1")
	p.must("scale", proj+"/web=2")
	time.Sleep(2 * time.Second)
	close(stop)
	l.wait()
	if l.sent.Load() < 1000 || l.failed.Load() != 0 {
		t.Fatalf("rolling update and scale 2->1->2: %d of %d requests failed: %v", l.failed.Load(), l.sent.Load(), l.errs)
	}
	t.Logf("rolling update and scale 2->1->2: 0 of %d requests failed", l.sent.Load())

	stop = make(chan struct{})
	l = runLoad(t, p.httpAddr, host, 300, true, stop)
	time.Sleep(time.Second)
	web := service(t, p.project(proj), "web")
	victim := running(web)[0]
	if err := docker(t).ContainerKill(context.Background(), victim.Status.ContainerID, "KILL"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	close(stop)
	l.wait()
	if l.failed.Load() != 0 {
		t.Fatalf("SIGKILL of %s: %d of %d GETs failed: %v", victim.Name(), l.failed.Load(), l.sent.Load(), l.errs)
	}
	t.Logf("SIGKILL of a replica: 0 of %d GETs failed", l.sent.Load())
}
