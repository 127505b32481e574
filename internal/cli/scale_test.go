package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// TestScaleChecksEveryArgumentFirst: `ruche scale` changes nothing unless
// every argument would be taken: unknown projects and services, and a
// fixed host port over the nodes that take replicas, are all named in one
// line before any scale request.
func TestScaleChecksEveryArgumentFirst(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{} // "METHOD path" -> requests
	shop := client.Project{Name: "shop", Services: []client.Service{
		{Name: "web", Spec: client.ServiceSpec{Name: "web", Replicas: 1}},
		{Name: "edge", Spec: client.ServiceSpec{Name: "edge", Replicas: 1, Ports: []client.PortSpec{{Target: 8080}, {Target: 80, Published: 80}}}},
	}}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/projects/shop", answer(shop))
	mux.HandleFunc("GET /v1/projects/{project}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(client.Error{Status: 404, Code: "not_found", Message: "no such project: " + r.PathValue("project")})
	})
	mux.Handle("GET /v1/nodes", answer([]client.Node{
		{ID: "n1", Status: client.NodeReady, Availability: client.AvailabilityActive},
		{ID: "n2", Status: client.NodeReady, Availability: client.AvailabilityDrain},
		{ID: "n3", Status: client.NodeDown, Availability: client.AvailabilityActive},
	}))
	mux.HandleFunc("POST /v1/projects/{project}/services/{service}/scale", func(w http.ResponseWriter, r *http.Request) {
		var req client.ScaleRequest
		json.NewDecoder(r.Body).Decode(&req)
		answer(client.Change{Service: r.PathValue("service"), Kind: client.ChangeScale, From: 1, To: req.Replicas})(w, r)
	})
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked[r.Method+" "+r.URL.Path]++
		mu.Unlock()
		mux.ServeHTTP(w, r)
	})
	conf := fakeAPI(t, counted)
	for _, tc := range []struct {
		name  string
		args  []string
		want  []string       // in the one line on stderr; none: success
		asked map[string]int // requests made, exactly
	}{
		{"unknown project and service", []string{"shop/web=2", "shop/nope=3", "ghost/web=1", "ghost/db=2"},
			[]string{"nothing scaled: ", "no such service: shop/nope", "no such project: ghost"},
			map[string]int{"GET /v1/projects/shop": 1, "GET /v1/projects/ghost": 1}},
		{"fixed host port over the nodes", []string{"shop/web=2", "shop/edge=2"},
			[]string{"nothing scaled: service shop/edge: 2 replicas each publish host port 80/tcp, but there is 1 node", `e.g. "80"`},
			map[string]int{"GET /v1/projects/shop": 1, "GET /v1/nodes": 1}},
		{"all taken", []string{"shop/web=3", "shop/edge=1"}, nil,
			map[string]int{"GET /v1/projects/shop": 1, "POST /v1/projects/shop/services/web/scale": 1, "POST /v1/projects/shop/services/edge/scale": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			clear(asked)
			mu.Unlock()
			var out, errOut bytes.Buffer
			code := Main(append([]string{"--config", conf, "scale", "-d"}, tc.args...), &out, &errOut)
			got := errOut.String()
			if tc.want == nil {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, got)
				}
			} else {
				if code != 1 || out.Len() != 0 || strings.Count(got, "\n") != 1 {
					t.Fatalf("exit %d, stdout %q, stderr %q: want 1, nothing, one line", code, out.String(), got)
				}
				for _, w := range tc.want {
					if !strings.Contains(got, w) {
						t.Errorf("stderr %q: want it to say %q", got, w)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(asked) != len(tc.asked) {
				t.Errorf("requests %v, want %v", asked, tc.asked)
			}
			for k, n := range tc.asked {
				if asked[k] != n {
					t.Errorf("requests %v, want %v", asked, tc.asked)
					break
				}
			}
		})
	}
}
