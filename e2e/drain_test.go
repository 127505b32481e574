package e2e

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrossNodeDrain: a replica being removed is drained from the other
// node's proxy too before it is stopped. Long answers run through the
// ingress of the node that does not hold web.2, to both replicas; then
// the service is scaled to 1, which removes web.2. The service stops with
// SIGKILL, so any answer still in flight to web.2 when it is stopped is
// cut: each must come back whole. (Before the other nodes acknowledged
// the drain, the stop came a fixed 2 s after the replica's own node had
// drained it, and these 8 s answers were cut.)
func TestCrossNodeDrain(t *testing.T) {
	e := startReach(t, "    stop_signal: SIGKILL")
	p := e.p
	via := p.httpAddr // the ingress of the node without web.2
	for _, r := range running(service(t, p.project(e.proj), "web")) {
		if r.Slot == 2 && r.Node != e.node {
			via = e.agentHTTP
		}
	}
	port := portOf(t, via)
	eventually(t, "the ingress reaches both replicas", 30*time.Second, func() bool {
		out, err := curl(t, "--resolve", e.host+":"+port+":127.0.0.1", "http://"+e.host+":"+port+"/")
		return err == nil && strings.HasPrefix(out, "hello from web.")
	})

	const n = 8
	var wg sync.WaitGroup
	outs := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = curl(t, "-N", "--max-time", "60", "--resolve", e.host+":"+port+":127.0.0.1", "http://"+e.host+":"+port+"/slow/8000")
		}()
	}
	time.Sleep(2 * time.Second) // every answer has begun
	p.must("scale", e.proj+"/web=1")
	wg.Wait()
	byWeb2, cut := 0, 0
	for i := range n {
		if errs[i] != nil || !strings.HasPrefix(outs[i], "started\ndone by web.") {
			t.Errorf("answer %d cut: %q, %v", i, outs[i], errs[i])
			cut++
		}
		if strings.Contains(outs[i], "done by web.2") {
			byWeb2++
		}
	}
	if byWeb2 == 0 && cut == 0 {
		t.Fatalf("no answer came from web.2 (the replica removed): the test proved nothing; answers %q", outs)
	}
	t.Logf("%d of %d answers came whole from web.2, the removed replica", byWeb2, n)
	eventually(t, "web.2 gone", 60*time.Second, func() bool {
		web := service(t, p.project(e.proj), "web")
		return len(running(web)) == 1 && running(web)[0].Slot == 1
	})
}
