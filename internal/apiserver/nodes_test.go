package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

func (e *env) putTask(node, id, service string, slot int, desired string) {
	e.t.Helper()
	rec := store.TaskRecord{Replica: client.Replica{ID: id, Project: "shop", Service: service, Slot: slot, Node: node, DesiredState: desired},
		Spec: client.ServiceSpec{Name: service, Image: "app:1", Replicas: 3}}
	if _, err := e.st.Txn(context.Background(), nil, store.Put(store.TaskKey(node, id), store.Encode(rec)),
		store.Put(store.TaskStatusKey(id), store.Encode(client.ReplicaStatus{State: client.StateRunning, Ready: true}))); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) node(id string) client.Node {
	e.t.Helper()
	var n client.Node
	if _, err := store.GetJSON(context.Background(), e.st, store.NodeKey(id), &n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestNodeAvailability(t *testing.T) {
	e := newEnv(t)
	e.putTask("n1", "shop.web.1.a", "web", 1, client.DesiredRunning)
	code, b := e.call("POST", "/v1/nodes/n1/drain", token, "", nil)
	if code != http.StatusOK {
		t.Fatalf("drain: %d %s", code, b)
	}
	var n client.Node
	json.Unmarshal(b, &n)
	if n.Availability != client.AvailabilityDrain || e.node("n1").Availability != client.AvailabilityDrain {
		t.Fatalf("after drain: got %q / stored %q", n.Availability, e.node("n1").Availability)
	}
	if n.Replicas != 1 {
		t.Errorf("replicas in the answer: got %d, want 1", n.Replicas)
	}
	if code, b := e.call("POST", "/v1/nodes/n1/active", token, "", nil); code != http.StatusOK {
		t.Fatalf("activate: %d %s", code, b)
	}
	if got := e.node("n1").Availability; got != client.AvailabilityActive {
		t.Fatalf("after activate: got %q", got)
	}
	code, b = e.call("POST", "/v1/nodes/nope/drain", token, "", nil)
	if code != http.StatusNotFound || !strings.Contains(decodeErr(t, b).Message, "no such node: nope") {
		t.Fatalf("unknown node: %d %s", code, b)
	}
}

func TestNodeLabels(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		req  client.NodeLabelRequest
		code int
		want map[string]string
	}{
		{"set", client.NodeLabelRequest{Set: map[string]string{"zone": "home", "ssd": "yes"}}, 200, map[string]string{"zone": "home", "ssd": "yes"}},
		{"remove", client.NodeLabelRequest{Remove: []string{"ssd"}}, 200, map[string]string{"zone": "home"}},
		{"nothing", client.NodeLabelRequest{}, 400, map[string]string{"zone": "home"}},
		{"bad key", client.NodeLabelRequest{Set: map[string]string{"a b": "x"}}, 400, map[string]string{"zone": "home"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := e.call("POST", "/v1/nodes/n1/labels", token, "application/json", mustJSON(tt.req))
			if code != tt.code {
				t.Fatalf("status: got %d, want %d (%s)", code, tt.code, b)
			}
			if got := e.node("n1").Labels; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("labels: got %v, want %v", got, tt.want)
			}
		})
	}
	if got := e.node("n1").RemovedLabels; !reflect.DeepEqual(got, []string{"ssd"}) {
		t.Errorf("removed labels: got %v", got)
	}
}

func TestNodeRemove(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.st.Txn(ctx, nil, store.Put(store.NodeKey("n2"), store.Encode(client.Node{ID: "n2", Status: "down"})))
	e.putTask("n2", "shop.web.1.aaaa", "web", 1, client.DesiredRunning)
	e.putTask("n2", "shop.web.2.bbbb", "web", 2, client.DesiredShutdown)
	code, b := e.call("DELETE", "/v1/nodes/n2", token, "", nil)
	if code != http.StatusConflict || !strings.Contains(decodeErr(t, b).Message, "1 replicas assigned (shop/web.1)") {
		t.Fatalf("rm with replicas: %d %s", code, b)
	}
	code, b = e.call("DELETE", "/v1/nodes/n2?force=true", token, "", nil)
	if code != http.StatusOK {
		t.Fatalf("rm --force: %d %s", code, b)
	}
	var resp client.NodeRemoveResponse
	json.Unmarshal(b, &resp)
	if !reflect.DeepEqual(resp.Replicas, []string{"shop/web.1"}) {
		t.Errorf("removed replicas: got %v", resp.Replicas)
	}
	if _, err := e.st.Get(ctx, store.NodeKey("n2")); err == nil {
		t.Error("node record still there")
	}
	if kvs, _, _ := e.st.List(ctx, store.NodeTasksPrefix("n2")); len(kvs) != 0 {
		t.Errorf("%d task records left on n2", len(kvs))
	}
	if code, _ := e.call("DELETE", "/v1/nodes/n2", token, "", nil); code != http.StatusNotFound {
		t.Errorf("rm again: got %d, want 404", code)
	}
}

func TestRebalanceMarksMoves(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.st.Txn(ctx, nil, store.Put(store.NodeKey("n2"), store.Encode(client.Node{ID: "n2", Status: "ready", Availability: "active"})))
	e.st.Txn(ctx, nil, store.Put(store.ServiceKey("shop", "web"), store.Encode(store.ServiceRecord{Spec: client.ServiceSpec{Name: "web", Image: "app:1", Replicas: 3}, Version: 1})))
	e.st.Txn(ctx, nil, store.Put(store.ProjectKey("shop"), store.Encode(store.ProjectRecord{Name: "shop"})))
	for i, id := range []string{"shop.web.1.a", "shop.web.2.b", "shop.web.3.c"} {
		e.putTask("n1", id, "web", i+1, client.DesiredRunning)
	}
	call := func(req client.RebalanceRequest) (int, client.RebalanceResponse, []byte) {
		code, b := e.call("POST", "/v1/rebalance", token, "application/json", mustJSON(req))
		var resp client.RebalanceResponse
		json.Unmarshal(b, &resp)
		return code, resp, b
	}
	code, resp, b := call(client.RebalanceRequest{DryRun: true})
	if code != 200 || len(resp.Moves) != 1 {
		t.Fatalf("dry run: %d %s", code, b)
	}
	var rec store.TaskRecord
	store.GetJSON(ctx, e.st, store.TaskKey("n1", resp.Moves[0].Replica), &rec)
	if rec.Moving != "" {
		t.Fatal("dry run marked a task")
	}
	code, resp, b = call(client.RebalanceRequest{Project: "shop", Service: "web"})
	if code != 200 || len(resp.Moves) != 1 || resp.Revision == 0 {
		t.Fatalf("rebalance: %d %s", code, b)
	}
	store.GetJSON(ctx, e.st, store.TaskKey("n1", resp.Moves[0].Replica), &rec)
	if rec.Moving == "" {
		t.Fatal("moved task not marked Moving")
	}
	// Its event names the replica as `ruche ps` does, not by task ID.
	_, b = e.call("GET", "/v1/events", token, "", nil)
	var ev client.Event
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var e client.Event
		if json.Unmarshal(line, &e) == nil && e.Action == "rebalance" {
			ev = e
		}
	}
	if want := resp.Moves[0].Name; ev.Action != "rebalance" || ev.Replica != want || !strings.HasPrefix(want, "web.") {
		t.Errorf("rebalance event %+v, want it to name replica %s", ev, want)
	}
	// Marked tasks are not picked again.
	if _, resp, _ = call(client.RebalanceRequest{}); len(resp.Moves) != 0 {
		t.Errorf("second rebalance: got %d moves, want 0", len(resp.Moves))
	}
	for _, tt := range []struct {
		req  client.RebalanceRequest
		code int
	}{
		{client.RebalanceRequest{Force: true}, 400},
		{client.RebalanceRequest{Service: "web"}, 400},
		{client.RebalanceRequest{Project: "nope"}, 404},
		{client.RebalanceRequest{Project: "shop", Service: "nope"}, 404},
	} {
		if code, _, b := call(tt.req); code != tt.code {
			t.Errorf("%+v: got %d, want %d (%s)", tt.req, code, tt.code, b)
		}
	}
}

// A replica on a down node is not shown ready in project views.
func TestProjectViewNodeDown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.st.Txn(ctx, nil, store.Put(store.NodeKey("n2"), store.Encode(client.Node{ID: "n2", Status: "down"})))
	e.st.Txn(ctx, nil, store.Put(store.ProjectKey("shop"), store.Encode(store.ProjectRecord{Name: "shop"})))
	e.putTask("n2", "shop.web.1.a", "web", 1, client.DesiredRunning)
	code, b := e.call("GET", "/v1/projects/shop", token, "", nil)
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	var p client.Project
	json.Unmarshal(b, &p)
	r := p.Services[0].Replicas[0]
	if r.Status.Ready || !strings.Contains(r.Status.Message, "node n2 is down") {
		t.Errorf("replica on a down node: got ready=%v %q", r.Status.Ready, r.Status.Message)
	}
}
