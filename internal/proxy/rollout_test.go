package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRollingUpdateFailsNoRequest replaces every replica of a service
// several times, the way the agent does (the new one joins the table, the
// old one leaves it, is drained, then stopped), under a steady load of GETs
// and POSTs; not one request may fail.
func TestRollingUpdateFailsNoRequest(t *testing.T) {
	p := newTestProxy(t, Config{HTTPAddr: "127.0.0.1:0"})
	c := proxyClient(t, p)

	type replica struct {
		id  string
		srv *httptest.Server
	}
	start := func(id string) replica {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, id+":"+string(b))
		}))
		return replica{id, srv}
	}
	var mu sync.Mutex
	live := []replica{start("r0"), start("r1")}
	install := func() {
		tab := &Table{Routes: []Route{{Name: "p/web", Host: "app.test"}}}
		for _, r := range live {
			tab.Routes[0].Upstreams = append(tab.Routes[0].Upstreams, Upstream{ID: r.id, Addr: r.srv.Listener.Addr().String()})
		}
		p.Update(tab)
	}
	install()

	ctx, stop := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	progress := make(chan struct{}, 1024) // a token per request done
	done := func() {
		select {
		case progress <- struct{}{}:
		default:
		}
	}
	// between lets k requests through.
	between := func(k int) {
		for range k {
			<-progress
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				var resp *http.Response
				var err error
				body := fmt.Sprintf("g%d-%d", g, i)
				if i%2 == 0 {
					resp, err = c.Get("http://app.test/")
					body = ""
				} else {
					resp, err = c.Post("http://app.test/", "text/plain", strings.NewReader(body))
				}
				if err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr == nil && resp.StatusCode == 200 && strings.HasSuffix(string(b), ":"+body) {
						ok.Add(1)
						done()
						continue
					}
					err = fmt.Errorf("status %d body %q read error %v", resp.StatusCode, b, rerr)
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				done()
			}
		})
	}

	n := 2
	for round := range 3 {
		for i := range 2 {
			mu.Lock()
			old := live[i]
			live[i] = start(fmt.Sprintf("r%d", n))
			n++
			mu.Unlock()
			between(50)
			install() // the new one in, the old one out
			between(20)
			if err := p.Drain(context.Background(), old.id); err != nil {
				t.Errorf("round %d: drain %s: %v", round, old.id, err)
			}
			// Stopped abruptly, as a container is: whatever is still
			// open to it breaks.
			old.srv.Listener.Close()
			old.srv.CloseClientConnections()
			old.srv.Close()
			between(20)
		}
	}
	stop()
	wg.Wait()
	for _, r := range live {
		r.srv.Close()
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Error("no request went through")
	}
	t.Logf("%d requests during 6 replacements", ok.Load())
}
