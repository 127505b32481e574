package apiserver

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/store"
)

// TestAgentNet: the mesh and subnet endpoints of the agent API, their
// status codes and error codes, over mutual TLS.
func TestAgentNet(t *testing.T) {
	e := newTLSEnv(t, nil)
	ctx := context.Background()
	cert2, cert3 := e.mustJoin("n2"), e.mustJoin("n3")
	hc2 := e.httpClient(cert2)
	const rng = "10.208.0.0/16"
	p := agent.RemotePathPrefix + "n2"
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	errCode := func(b []byte) client.Error {
		t.Helper()
		var ce client.Error
		if err := json.Unmarshal(b, &ce); err != nil {
			t.Fatalf("error body %s: %v", b, err)
		}
		return ce
	}

	for _, tc := range []struct {
		name       string
		hc         *http.Client
		method     string
		path       string
		body       any
		want       int
		code, text string
	}{
		{"another node's certificate", e.httpClient(cert3), "POST", p + "/mesh/join", client.MeshNode{Node: "n2", Range: rng}, 403, "forbidden", ""},
		{"no certificate", e.httpClient(nil), "POST", p + "/mesh/join", client.MeshNode{Node: "n2", Range: rng}, 401, "unauthorized", ""},
		{"no certificate, stream", e.httpClient(nil), "GET", p + "/mesh", nil, 401, "unauthorized", ""},
		{"another node in the body", hc2, "POST", p + "/mesh/join", client.MeshNode{Node: "n3", Range: rng}, 400, "invalid", "does not match"},
		{"bad range", hc2, "POST", p + "/mesh/join", client.MeshNode{Node: "n2", Range: "10.208.0.0/24"}, 400, "invalid", "too small"},
		{"bad key", hc2, "POST", p + "/mesh/join", client.MeshNode{Node: "n2", Range: rng, PublicKey: "abc"}, 400, "invalid", "public key"},
		{"join", hc2, "POST", p + "/mesh/join", client.MeshNode{Node: "n2", Range: rng, PublicKey: key, Endpoint: "192.0.2.2:51820"}, 200, "", ""},
		{"another range", hc2, "POST", p + "/mesh/join", client.MeshNode{Node: "n2", Range: "10.9.0.0/16"}, 409, agent.CodeRangeMismatch,
			"the cluster's private range is 10.208.0.0/16; this node was started with --private-range 10.9.0.0/16"},
		{"subnet, another node in the body", hc2, "POST", p + "/subnets", client.SubnetRequest{Node: "n3", Range: rng, Network: "ruche-shop-default", Project: "shop"}, 400, "invalid", "does not match"},
		{"subnet, another range", hc2, "POST", p + "/subnets", client.SubnetRequest{Node: "n2", Range: "10.9.0.0/16", Network: "ruche-shop-default", Project: "shop"}, 409, agent.CodeRangeMismatch, "--private-range 10.9.0.0/16"},
		{"subnet, bad want", hc2, "POST", p + "/subnets", client.SubnetRequest{Node: "n2", Range: rng, Network: "ruche-shop-default", Project: "shop", Want: "x"}, 400, "invalid", "wanted subnet"},
		{"subnet", hc2, "POST", p + "/subnets", client.SubnetRequest{Node: "n2", Range: rng, Network: "ruche-shop-default", Project: "shop", Want: "10.208.4.0/24"}, 200, "", ""},
		{"release", hc2, "DELETE", p + "/subnets/ruche-shop-default", nil, 204, "", ""},
		{"release again", hc2, "DELETE", p + "/subnets/ruche-shop-default", nil, 204, "", ""},
		{"release, another node's certificate", e.httpClient(cert3), "DELETE", p + "/subnets/ruche-shop-default", nil, 403, "forbidden", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := e.do(tc.hc, tc.method, tc.path, "", tc.body)
			if code != tc.want {
				t.Fatalf("got %d %s, want %d", code, b, tc.want)
			}
			if tc.want >= 400 {
				if ce := errCode(b); ce.Code != tc.code || !strings.Contains(ce.Message, tc.text) {
					t.Fatalf("error %+v, want code %s and %q", ce, tc.code, tc.text)
				}
			}
		})
	}
	var n client.MeshNode
	if _, err := store.GetJSON(ctx, e.st, store.MeshNodeKey("n2"), &n); err != nil || n.Addr != "10.208.0.1" || n.PublicKey != key {
		t.Fatalf("n2's mesh record: %+v %v", n, err)
	}
	if _, err := e.st.Get(ctx, store.SubnetKey("ruche-shop-default", "n2")); err == nil {
		t.Fatal("the released subnet is still recorded")
	}

	// The range exhausted: 409 range_full.
	for i := 1; i < 256; i++ {
		net := fmt.Sprintf("net%d", i)
		e.st.Txn(ctx, nil, store.Put(store.SubnetKey(net, "n3"), store.Encode(client.Subnet{Network: net, Node: "n3", Subnet: fmt.Sprintf("10.208.%d.0/24", i)})))
	}
	code, b := e.do(hc2, "POST", p+"/subnets", "", client.SubnetRequest{Node: "n2", Range: rng, Network: "ruche-shop-default", Project: "shop"})
	if ce := errCode(b); code != 409 || ce.Code != agent.CodeRangeFull || !strings.Contains(ce.Message, "no /24 left") {
		t.Fatalf("subnet in a full range: got %d %s", code, b)
	}

	// The stream: one state a frame.
	req, _ := http.NewRequest("GET", e.srv.URL+p+"/mesh", nil)
	resp, err := hc2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var f agent.StreamFrame[client.MeshState]
	if err := json.Unmarshal(line, &f); err != nil || len(f.Set) != 1 {
		t.Fatalf("first frame %s: %v", line, err)
	}
	if ms := f.Set[0]; ms.Range != rng || len(ms.Nodes) != 1 || ms.Nodes[0].Addr != "10.208.0.1" || len(ms.Subnets) != 255 {
		t.Fatalf("first state: range %s, nodes %+v, %d subnets", ms.Range, ms.Nodes, len(ms.Subnets))
	}
}

// TestNodeRemoveLeavesTheMesh: `ruche node rm` deletes the node's mesh
// record and subnets with it, and nothing of the other nodes'.
func TestNodeRemoveLeavesTheMesh(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	put := func(key string, v any) {
		t.Helper()
		if _, err := e.st.Txn(ctx, nil, store.Put(key, store.Encode(v))); err != nil {
			t.Fatal(err)
		}
	}
	put(store.NodeKey("n2"), client.Node{ID: "n2", Status: "down"})
	put(store.MeshNodeKey("n1"), client.MeshNode{Node: "n1", Addr: "10.208.0.1"})
	put(store.MeshNodeKey("n2"), client.MeshNode{Node: "n2", Addr: "10.208.0.2"})
	put(store.MeshNodeKey("n22"), client.MeshNode{Node: "n22", Addr: "10.208.0.3"})
	for _, s := range []client.Subnet{
		{Network: "ruche-shop-default", Node: "n1", Subnet: "10.208.1.0/24"},
		{Network: "ruche-shop-default", Node: "n2", Subnet: "10.208.2.0/24"},
		{Network: "ruche-shop-back", Node: "n2", Subnet: "10.208.3.0/24"},
		{Network: "ruche-shop-back", Node: "n22", Subnet: "10.208.4.0/24"},
	} {
		put(store.SubnetKey(s.Network, s.Node), s)
	}
	if code, b := e.call("DELETE", "/v1/nodes/n2", token, "", nil); code != http.StatusOK {
		t.Fatalf("rm: %d %s", code, b)
	}
	var left []string
	for _, prefix := range []string{store.MeshNodesPrefix, store.SubnetsPrefix} {
		kvs, _, _ := e.st.List(ctx, prefix)
		for _, kv := range kvs {
			left = append(left, strings.TrimPrefix(kv.Key, store.Root+"net/"))
		}
	}
	if want := "mesh/n1 mesh/n22 subnets/ruche-shop-back/n22 subnets/ruche-shop-default/n1"; strings.Join(left, " ") != want {
		t.Fatalf("left after rm n2: %v, want %s", left, want)
	}
}
