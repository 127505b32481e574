package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// TestMetricsTargets: the managers' API and the nodes that serve metrics
// (a wildcard listen address is reached at the node's address), in
// Prometheus's http_sd format, for a token holder only.
func TestMetricsTargets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, n := range []client.Node{
		{ID: "n2", Addr: "192.0.2.2", MetricsAddr: ":9464"},
		{ID: "n3", Addr: "192.0.2.3", MetricsAddr: "192.0.2.33:9100"},
		{ID: "n4", Addr: "192.0.2.4", MetricsAddr: "0.0.0.0:9464"},
	} {
		e.st.Txn(ctx, nil, store.Put(store.NodeKey(n.ID), store.Encode(n)))
	}
	if code, _ := e.call("GET", "/v1/metrics/targets", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("without a token: got %d, want 401", code)
	}
	code, body := e.call("GET", "/v1/metrics/targets", token, "", nil)
	if code != http.StatusOK {
		t.Fatalf("got %d: %s", code, body)
	}
	var got client.MetricsTargets
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := client.MetricsTargets{
		{Targets: []string{"192.0.2.2:9464"}, Labels: map[string]string{"__scheme__": "http", "ruche_node": "n2"}},
		{Targets: []string{"192.0.2.33:9100"}, Labels: map[string]string{"__scheme__": "http", "ruche_node": "n3"}},
		{Targets: []string{"192.0.2.4:9464"}, Labels: map[string]string{"__scheme__": "http", "ruche_node": "n4"}},
	}
	// The test server's own manager has no API address configured: not listed.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
