package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// badRequest is one bad input to one route and what must come back: a
// JSON error with status code whose message or details contain msg.
type badRequest struct {
	name, method, path, tok, ctype, body string
	code                                 int
	msg                                  string
}

// TestBadInput sends bad input to every route and wants, for each, the
// API's JSON error naming the problem, no change at all in the store, and
// a server that still answers the next request.
func TestBadInput(t *testing.T) {
	e := newBadInputEnv(t)
	pad := strings.Repeat(" ", 70<<10) // over the test server's 64 KiB limit
	const yaml = "application/yaml"
	const js = "application/json"
	for _, tc := range []badRequest{
		// Authentication, on an admin route and on the backup.
		{"no token", "GET", "/v1/projects", "", "", "", 401, "missing bearer token"},
		{"wrong token", "GET", "/v1/projects", "nope", "", "", 401, "invalid token"},
		{"expired token", "DELETE", "/v1/projects/shop", "expired", "", "", 401, "token expired"},
		{"non-admin token", "PUT", "/v1/projects/shop", "viewer", js, `{}`, 403, "role cannot use the API"},
		{"non-admin token on backup", "GET", "/v1/backup", "viewer", "", "", 403, "role cannot use the API"},
		{"join token as API token", "GET", "/v1/status", "ruchejoin_x", "", "", 401, "invalid token"},
		{"no node certificate on the agent API", "GET", "/v1/agent/nodes/n1/tasks", token, "", "", 401, "node certificate"},
		{"no manager certificate on beats", "POST", "/v1/managers/beat", token, js, `{}`, 401, "manager certificate"},
		{"unknown endpoint", "GET", "/v1/nope", token, "", "", 404, "no such endpoint"},
		{"unknown method on a project", "PATCH", "/v1/projects/shop", token, js, `{}`, 405, "PATCH /v1/projects/shop: method not allowed, use GET or PUT or DELETE"},
		{"POST on the project list", "POST", "/v1/projects", token, js, `{}`, 405, "use GET"},
		{"GET on scale", "GET", "/v1/projects/shop/services/web/scale", token, "", "", 405, "use POST"},
		{"DELETE on a service", "DELETE", "/v1/projects/shop/services/web/rollback", token, "", "", 405, "use POST"},
		{"PUT on a node", "PUT", "/v1/nodes/n1", token, js, `{}`, 405, "use GET or DELETE"},
		{"POST on events", "POST", "/v1/events", token, js, `{}`, 405, "use GET"},
		{"GET on join", "GET", "/v1/join", "", "", "", 405, "use POST"},
		{"PUT on the backup", "PUT", "/v1/backup", token, "", "", 405, "use GET"},

		// Deploy: the body.
		{"deploy malformed json", "PUT", "/v1/projects/shop", token, js, `{"project": {`, 400, "not a valid deploy request"},
		{"deploy empty body", "PUT", "/v1/projects/shop", token, js, ``, 400, "body is empty"},
		{"deploy json array", "PUT", "/v1/projects/shop", token, js, `[]`, 400, "cannot unmarshal array"},
		{"deploy unknown field", "PUT", "/v1/projects/shop", token, js, `{"project": {"name": "shop"}, "bogus": 1}`, 400, `unknown field "bogus"`},
		{"deploy trailing data", "PUT", "/v1/projects/shop", token, js, deployJSON("shop", 1) + ` {"dry_run": true}`, 400, "unexpected data after the JSON value"},
		{"deploy padded past the limit", "PUT", "/v1/projects/shop", token, js, deployJSON("shop", 5) + pad, 413, "larger than the limit"},
		{"deploy yaml past the limit", "PUT", "/v1/projects/shop", token, yaml, "services:\n  web:\n    image: hello:1\n" + pad, 413, "larger than the limit"},
		{"deploy bad media type", "PUT", "/v1/projects/shop", token, "text/plain", "x", 415, "Content-Type"},
		{"deploy name mismatch", "PUT", "/v1/projects/shop", token, js, deployJSON("other", 1), 400, "does not match"},
		// Deploy: the compose file.
		{"yaml malformed", "PUT", "/v1/projects/shop", token, yaml, "services:\n  web:\n    image: [unclosed\n", 400, "compose.yml"},
		{"yaml empty", "PUT", "/v1/projects/shop", token, yaml, "", 400, "empty compose file"},
		{"yaml not a mapping", "PUT", "/v1/projects/shop", token, yaml, "- a\n", 400, "mapping of top-level keys"},
		{"yaml unknown key names key and line", "PUT", "/v1/projects/shop", token, yaml, "services:\n  web:\n    image: x\n    bogus: 1\n", 400, "compose.yml:4: services.web.bogus: unknown key"},
		{"yaml negative replicas", "PUT", "/v1/projects/shop", token, yaml, "services:\n  web:\n    image: x\n    deploy:\n      replicas: -3\n", 400, "services.web.deploy.replicas: must not be negative"},
		{"yaml too many replicas", "PUT", "/v1/projects/shop", token, yaml, "services:\n  web:\n    image: x\n    deploy:\n      replicas: 100000\n", 400, "more than the"},
		{"yaml replicas beyond int64", "PUT", "/v1/projects/shop", token, yaml, "services:\n  web:\n    image: x\n    deploy:\n      replicas: 99999999999999999999\n", 400, "99999999999999999999 is more than the"},
		{"yaml duplicate service", "PUT", "/v1/projects/shop", token, yaml, "services:\n  web:\n    image: x\n  web:\n    image: y\n", 400, "services.web: duplicate key (first written at line 2)"},
		{"yaml port out of range", "PUT", "/v1/projects/shop", token, yaml, "services:\n  web:\n    image: x\n    ports: [\"99999:80\"]\n", 400, `invalid port "99999:80"`},
		{"yaml port not a number", "PUT", "/v1/projects/shop", token, yaml, "services:\n  web:\n    image: x\n    ports: [\"abc\"]\n", 400, `invalid port "abc"`},
		{"yaml host port twice in one file", "PUT", "/v1/projects/shop", token, yaml, "services:\n  a:\n    image: x\n    ports: [\"7000:80\"]\n  b:\n    image: x\n    ports: [\"7000:80\"]\n", 400, "host port 7000/tcp is published twice"},
		{"yaml host port of another project", "PUT", "/v1/projects/other", token, yaml, "services:\n  a:\n    image: x\n    ports: [\"8080:80\"]\n", 400, "host port 8080/tcp is already used by shop/web"},
		{"yaml host port busy on the node", "PUT", "/v1/projects/other", token, yaml, "services:\n  a:\n    image: x\n    ports: [\"9999:80\"]\n", 400, "host port 9999/tcp"},
		{"yaml image that does not exist", "PUT", "/v1/projects/other", token, yaml, "services:\n  a:\n    image: nosuch:1\n", 400, "nosuch:1"},
		{"yaml all problems at once", "PUT", "/v1/projects/other", token, yaml, "services:\n  a:\n    image: nosuch:1\n    ports: [\"8080:80\"]\n", 400, "2 problems"},
		// Deploy: the project name in the path.
		{"project name with a slash", "PUT", "/v1/projects/a%2Fb", token, yaml, "services:\n  a:\n    image: x\n", 400, "not a valid project name"},
		{"project name with dot-dot", "PUT", "/v1/projects/a%2F..", token, yaml, "services:\n  a:\n    image: x\n", 400, "not a valid project name"},
		{"project name with NUL", "PUT", "/v1/projects/a%00", token, yaml, "services:\n  a:\n    image: x\n", 400, "not a valid project name"},
		{"project name in unicode", "PUT", "/v1/projects/%C3%A9t%C3%A9", token, yaml, "services:\n  a:\n    image: x\n", 400, "not a valid project name"},
		{"project name in capitals", "PUT", "/v1/projects/Shop", token, yaml, "services:\n  a:\n    image: x\n", 400, "not a valid project name"},
		{"project name too long", "PUT", "/v1/projects/" + strings.Repeat("a", 64), token, yaml, "services:\n  a:\n    image: x\n", 400, "not a valid project name"},

		// Projects that do not exist.
		{"get unknown project", "GET", "/v1/projects/nope", token, "", "", 404, "no such project: nope"},
		{"get project with a slash", "GET", "/v1/projects/shop%2Fweb", token, "", "", 404, "no such project: shop/web"},
		{"get project with NUL", "GET", "/v1/projects/%00", token, "", "", 404, "no such project"},
		{"get project very long name", "GET", "/v1/projects/" + strings.Repeat("x", 4000), token, "", "", 404, "no such project"},
		{"rm unknown project", "DELETE", "/v1/projects/nope", token, "", "", 404, "no such project: nope"},
		{"rm project, volumes not a boolean", "DELETE", "/v1/projects/shop?volumes=please", token, "", "", 400, `query parameter volumes must be true or false, got "please"`},
		{"deploy, dry_run not a boolean", "PUT", "/v1/projects/shop?dry_run=maybe", token, yaml, "services:\n  web:\n    image: hello:2\n", 400, `query parameter dry_run must be true or false, got "maybe"`},
		{"rm project with a slash", "DELETE", "/v1/projects/shop%2Fweb", token, "", "", 404, "no such project: shop/web"},

		// Scale.
		{"scale negative", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replicas": -1}`, 400, "replicas must be between 0 and"},
		{"scale huge", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replicas": 100000}`, 400, "replicas must be between 0 and"},
		{"scale beyond int", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replicas": 1e30}`, 400, "cannot unmarshal number"},
		{"scale fraction", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replicas": 1.5}`, 400, "cannot unmarshal number"},
		{"scale not a number", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replicas": "x"}`, 400, "cannot unmarshal string"},
		{"scale unknown field", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replica": 3}`, 400, `unknown field "replica"`},
		{"scale empty body", "POST", "/v1/projects/shop/services/web/scale", token, js, ``, 400, "body is empty"},
		{"scale trailing data", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replicas": 1} {"replicas": 50}`, 400, "unexpected data after the JSON value"},
		{"scale padded past the limit", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replicas": 2}` + pad, 413, "larger than the limit"},
		{"scale string past the limit", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replicas": "` + strings.Repeat("9", 70<<10) + `"}`, 413, "larger than the limit"},
		{"scale unknown project", "POST", "/v1/projects/nope/services/web/scale", token, js, `{"replicas": 2}`, 404, "no such service: nope/web"},
		{"scale unknown service", "POST", "/v1/projects/shop/services/nope/scale", token, js, `{"replicas": 2}`, 404, "no such service: shop/nope"},
		{"scale past the nodes on a fixed host port", "POST", "/v1/projects/shop/services/web/scale", token, js, `{"replicas": 2}`, 400, "once per node"},

		// Rollback and logs.
		{"rollback without a previous version", "POST", "/v1/projects/shop/services/web/rollback", token, "", "", 409, "no previous version"},
		{"rollback unknown service", "POST", "/v1/projects/shop/services/nope/rollback", token, "", "", 404, "no such service: shop/nope"},
		{"logs without a log source", "GET", "/v1/projects/shop/services/web/logs", token, "", "", 501, "no log source"},

		// Events.
		{"events since not a time", "GET", "/v1/events?since=abc", token, "", "", 400, "since must be"},
		{"events follow not a boolean", "GET", "/v1/events?follow=maybe", token, "", "", 400, "query parameter follow must be true or false"},
		{"events since a negative duration", "GET", "/v1/events?since=-10m", token, "", "", 400, `since is how long ago, a positive duration (10m), got "-10m"`},
		{"events since beyond a duration", "GET", "/v1/events?since=99999999999h", token, "", "", 400, "since must be"},

		// Nodes.
		{"get unknown node", "GET", "/v1/nodes/nope", token, "", "", 404, "no such node: nope"},
		{"drain unknown node", "POST", "/v1/nodes/nope/drain", token, "", "", 404, "no such node: nope"},
		{"activate unknown node", "POST", "/v1/nodes/nope/active", token, "", "", 404, "no such node: nope"},
		{"label unknown node", "POST", "/v1/nodes/nope/labels", token, js, `{"set": {"a": "b"}}`, 404, "no such node: nope"},
		{"label bad key", "POST", "/v1/nodes/n1/labels", token, js, `{"set": {"a b": "c"}}`, 400, `label key "a b"`},
		{"label nothing", "POST", "/v1/nodes/n1/labels", token, js, `{}`, 400, "nothing to do"},
		{"label trailing data", "POST", "/v1/nodes/n1/labels", token, js, `{"set": {"a": "b"}} junk`, 400, "unexpected data after the JSON value"},
		{"label padded past the limit", "POST", "/v1/nodes/n1/labels", token, js, `{"set": {"a": "b"}}` + pad, 413, "larger than the limit"},
		{"label wrong shape", "POST", "/v1/nodes/n1/labels", token, js, `{"set": ["a"]}`, 400, "cannot unmarshal array"},
		{"rm unknown node", "DELETE", "/v1/nodes/nope", token, "", "", 404, "no such node: nope"},
		{"rm node, force not a boolean", "DELETE", "/v1/nodes/n1?force=maybe", token, "", "", 400, "query parameter force must be true or false"},
		{"rm node with replicas", "DELETE", "/v1/nodes/n1", token, "", "", 409, "replicas assigned"},
		{"rebalance unknown project", "POST", "/v1/rebalance", token, js, `{"project": "nope"}`, 404, "no such project: nope"},
		{"rebalance unknown service", "POST", "/v1/rebalance", token, js, `{"project": "shop", "service": "nope"}`, 404, "no such service: shop/nope"},
		{"rebalance service without project", "POST", "/v1/rebalance", token, js, `{"service": "web"}`, 400, "needs its project"},
		{"rebalance force without service", "POST", "/v1/rebalance", token, js, `{"force": true}`, 400, "name one service"},
		{"rebalance empty body", "POST", "/v1/rebalance", token, js, ``, 400, "body is empty"},

		// Join tokens.
		{"token bad role", "POST", "/v1/tokens", token, js, `{"role": "root"}`, 400, `role must be "agent" or "manager"`},
		{"token negative ttl", "POST", "/v1/tokens", token, js, `{"ttl": "-1h"}`, 400, "ttl must be positive"},
		{"token ttl not a duration", "POST", "/v1/tokens", token, js, `{"ttl": "abc"}`, 400, "invalid duration"},
		{"token ttl beyond a duration", "POST", "/v1/tokens", token, js, `{"ttl": "99999999999h"}`, 400, "invalid duration"},
		{"token empty body", "POST", "/v1/tokens", token, js, ``, 400, "body is empty"},
		{"token trailing data", "POST", "/v1/tokens", token, js, `{} {}`, 400, "unexpected data after the JSON value"},
		{"token id too short", "DELETE", "/v1/tokens/abc", token, "", "", 400, "at least 6 characters"},
		{"unknown token id", "DELETE", "/v1/tokens/abcdef", token, "", "", 404, "no such join token: abcdef"},
		{"token id with a slash", "DELETE", "/v1/tokens/abcdef%2F..", token, "", "", 404, "no such join token"},

		// What this server has no collaborator for.
		{"rm manager without membership", "DELETE", "/v1/managers/nope", token, "", "", 501, "does not manage store members"},
		{"backup without a writer", "GET", "/v1/backup", token, "", "", 501, "backups are not available"},
		{"join without a CA", "POST", "/v1/join", "", js, `{}`, 501, "no cluster CA"},
	} {
		t.Run(tc.name, func(t *testing.T) { e.expectBad(t, tc) })
	}
}

type badInputEnv struct {
	*env
}

// newBadInputEnv is a server holding project shop (web: 1 replica on
// node n1, publishing host port 8080), an expired admin token "expired"
// and a token "viewer" whose role is not admin.
func newBadInputEnv(t *testing.T) badInputEnv {
	e := newEnv(t)
	ctx := context.Background()
	expired := store.TokenRecord{Name: "old", Role: "admin", Expires: time.Now().Add(-time.Hour)}
	if _, err := e.st.Txn(ctx, nil,
		store.Put(store.TokenKey(HashToken("expired")), store.Encode(expired)),
		store.Put(store.TokenKey(HashToken("viewer")), store.Encode(store.TokenRecord{Name: "viewer", Role: "viewer"})),
		store.Put(store.JoinTokenKey(HashToken("ruchejoin_x")), store.Encode(store.JoinTokenRecord{Role: "agent", Expires: time.Now().Add(time.Hour)})),
	); err != nil {
		t.Fatal(err)
	}
	p := web(1)
	p.Services["web"] = client.ServiceSpec{Name: "web", Image: "hello:1", Replicas: 1, Ports: []client.PortSpec{{Target: 80, Published: 8080}}}
	if code, body := e.deploy(p, false); code != 200 {
		t.Fatalf("deploy: %d %s", code, body)
	}
	task := store.TaskRecord{Replica: client.Replica{ID: "shop.web.1.x", Project: "shop", Service: "web", Slot: 1, Version: 1,
		Node: "n1", DesiredState: client.DesiredRunning}, Spec: p.Services["web"]}
	if _, err := e.st.Txn(ctx, nil, store.Put(store.TaskKey("n1", task.ID), store.Encode(task))); err != nil {
		t.Fatal(err)
	}
	return badInputEnv{e}
}

// expectBad sends tc and checks the answer, the store and the next request.
func (e badInputEnv) expectBad(t *testing.T, tc badRequest) {
	t.Helper()
	ctx := context.Background()
	before := e.dump(t)
	req, _ := http.NewRequestWithContext(ctx, tc.method, e.srv.URL+tc.path, strings.NewReader(tc.body))
	if tc.tok != "" {
		req.Header.Set("Authorization", "Bearer "+tc.tok)
	}
	if tc.ctype != "" {
		req.Header.Set("Content-Type", tc.ctype)
	}
	code, hdr, body := e.do(t, req)
	if code != tc.code {
		t.Fatalf("got %d %s, want %d", code, body, tc.code)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	got := decodeErr(t, body)
	if got.Status != tc.code {
		t.Errorf("error body's status %d, want %d", got.Status, tc.code)
	}
	if strings.Contains(got.Message, "\n") {
		t.Errorf("message is not one line: %q", got.Message)
	}
	if all := got.Message + "\n" + strings.Join(got.Details, "\n"); !strings.Contains(all, tc.msg) {
		t.Errorf("error %q does not say %q", all, tc.msg)
	}
	if after := e.dump(t); after != before {
		t.Errorf("the store changed:\nbefore %s\nafter  %s", before, after)
	}
	if code, body := e.call("GET", "/v1/status", token, "", nil); code != 200 {
		t.Fatalf("the next request: %d %s", code, body)
	}
}

func (e badInputEnv) do(t *testing.T, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, []byte(b.String())
}

// dump is every key with its modification revision.
func (e badInputEnv) dump(t *testing.T) string {
	t.Helper()
	kvs, rev, err := e.st.List(context.Background(), store.Root)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "revision %d:", rev)
	for _, kv := range kvs {
		fmt.Fprintf(&b, " %s@%d", kv.Key, kv.ModRevision)
	}
	return b.String()
}

func deployJSON(project string, replicas int) string {
	p := web(replicas)
	p.Name = project
	return string(mustJSON(client.DeployRequest{Project: p}))
}

// A 405 names the methods the path takes in Allow; HEAD still works where
// GET does.
func TestMethodNotAllowedAllow(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("PATCH", e.srv.URL+"/v1/projects/shop", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Allow"), "GET, PUT, DELETE"; resp.StatusCode != 405 || got != want {
		t.Errorf("got %d with Allow %q, want 405 with %q", resp.StatusCode, got, want)
	}
	req, _ = http.NewRequest("HEAD", e.srv.URL+"/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HEAD /v1/status: got %d, want 200", resp.StatusCode)
	}
}

// ?dry_run=true makes a JSON deploy a dry run too, as it does a compose
// file: it must never apply.
func TestDryRunQueryOnJSON(t *testing.T) {
	e := newEnv(t)
	code, body := e.call("PUT", "/v1/projects/shop?dry_run=true", token, "application/json", mustJSON(client.DeployRequest{Project: web(1)}))
	var resp client.DeployResponse
	if err := json.Unmarshal(body, &resp); code != 200 || err != nil || !resp.DryRun {
		t.Fatalf("got %d %s, want 200 and a dry run", code, body)
	}
	if kvs, _, _ := e.st.List(context.Background(), store.ServicesPrefix); len(kvs) != 0 {
		t.Fatalf("a dry run wrote %d service records", len(kvs))
	}
}
