package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/routing"
)

type chanRoutes struct {
	node string
	ch   chan []routing.Route
}

func (c *chanRoutes) WatchRoutes(ctx context.Context, node string) <-chan []routing.Route {
	c.node = node
	out := make(chan []routing.Route)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case rs := <-c.ch:
				select {
				case out <- rs:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// TestAgentIngress: the proxy of an agent node serves the tables the
// managers send, ready backends with an address only.
func TestAgentIngress(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from n2")
	}))
	defer backend.Close()
	src := &chanRoutes{ch: make(chan []routing.Route)}
	in, err := newAgentIngress(IngressConfig{HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HoldTimeout: 100 * time.Millisecond},
		"n3", src, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	in.run(ctx, func(name string, fn func() error) { go func() { errc <- fn() }() })
	defer func() {
		cancel()
		for range 2 {
			if err := <-errc; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}()
	select {
	case <-in.proxy.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not ready")
	}
	httpAddr, httpsAddr := in.proxy.Addrs()
	if httpsAddr != nil {
		t.Errorf("HTTPS listener started on an agent node (%v)", httpsAddr)
	}
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", "http://"+httpAddr.String()+"/", nil)
		req.Host = "shop.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(); code != http.StatusNotFound {
		t.Errorf("before any table: got %d, want 404", code)
	}
	addr := strings.TrimPrefix(backend.URL, "http://")
	src.ch <- []routing.Route{{Project: "shop", Service: "web", Host: "shop.test", TLS: client.TLSNone, Backends: []routing.Backend{
		{TaskID: "shop.web.1.a", Node: "n2", Addr: addr, Ready: true},
		{TaskID: "shop.web.2.b", Node: "n1", Addr: "", Ready: true}, // unreachable from here: left out
	}}}
	if src.node != "n3" {
		t.Errorf("table asked for node %q, want n3", src.node)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get()
		if code == http.StatusOK && body == "hello from n2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("through the agent's proxy: got %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	src.ch <- []routing.Route{{Project: "shop", Service: "web", Host: "shop.test", Backends: []routing.Backend{
		{TaskID: "shop.web.1.a", Node: "n2", Addr: addr, Ready: false},
	}}}
	for {
		if code, _ := get(); code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a replica no longer ready still gets traffic")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
