package cli

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// fakeAPI serves h over TLS and returns a client config file for it.
func fakeAPI(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	conf := filepath.Join(t.TempDir(), "cli.conf")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := (&client.Config{Servers: []string{srv.URL}, CA: string(caPEM), Token: "tok"}).Write(conf); err != nil {
		t.Fatal(err)
	}
	return conf
}

func answer(v any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
}

// TestChangesInJSON: scale, rollback and rm print their change as JSON
// with -o json, and only JSON on stdout.
func TestChangesInJSON(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/projects/shop", answer(client.Project{Name: "shop", Services: []client.Service{{Name: "web", Spec: client.ServiceSpec{Replicas: 2}}}}))
	mux.Handle("POST /v1/projects/shop/services/web/scale", answer(client.Change{Service: "web", Kind: client.ChangeScale, From: 2, To: 5, Revision: 9}))
	mux.Handle("POST /v1/projects/shop/services/web/rollback", answer(client.Change{Service: "web", Kind: client.ChangeUpdate, Fields: []string{"image"}, From: 2, To: 2, Revision: 9}))
	mux.Handle("DELETE /v1/projects/shop", answer(client.DeployResponse{Project: "shop", Changes: []client.Change{{Service: "web", Kind: client.ChangeRemove, From: 2}}, Revision: 9}))
	conf := fakeAPI(t, mux)
	for _, tc := range []struct {
		args []string
		want string // a field of the JSON answer
	}{
		{[]string{"scale", "-d", "shop/web=5"}, `"to": 5`},
		{[]string{"rollback", "-d", "shop/web"}, `"fields": [`},
		{[]string{"rm", "-d", "shop"}, `"project": "shop"`},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(append([]string{"--config", conf, "-o", "json"}, tc.args...), &out, &errOut)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			var v map[string]any
			if err := json.Unmarshal(out.Bytes(), &v); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("got %s, want it to hold %s", out.String(), tc.want)
			}
		})
	}
}

// TestLogsRefusesJSON: log lines are the replicas' own text; -o json is
// refused before anything is asked of the API.
func TestLogsRefusesJSON(t *testing.T) {
	var asked atomic.Int32
	conf := fakeAPI(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1) }))
	var out, errOut bytes.Buffer
	code := Main([]string{"--config", conf, "-o", "json", "logs", "shop/web"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "-o json does not apply") {
		t.Errorf("got exit %d, %q; want 1 and a message that -o json does not apply", code, errOut.String())
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the API got %d requests, want none", n)
	}
}

func TestTokenCreateText(t *testing.T) {
	conf := fakeAPI(t, answer(client.JoinToken{ID: "64fc1c48966c", Token: "ruchejoin_x", Role: client.JoinRoleAgent,
		CAHash: "sha256:ab", Managers: []string{"https://10.0.0.1:7443"}}))
	var out, errOut bytes.Buffer
	if code := Main([]string{"--config", conf, "token", "create"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"Join token for a new agent, valid once", "  ruche agent --join https://10.0.0.1:7443 --token ruchejoin_x --ca-hash sha256:ab\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("got\n%s\nwant it to hold %q", out.String(), want)
		}
	}
}

// TestPrintEventColumns: the message column starts at the same place for
// the longest actions the controller records as for short ones.
func TestPrintEventColumns(t *testing.T) {
	var b bytes.Buffer
	for _, action := range []string{"ready", "update_completed", "rollback_started"} {
		printEvent(&b, client.Event{Type: "service", Action: action, Project: "shop", Service: "web", Message: "MSG"})
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	for _, l := range lines[1:] {
		if got, want := strings.Index(l, "MSG"), strings.Index(lines[0], "MSG"); got != want {
			t.Errorf("%q: message at column %d, want %d as in %q", l, got, want, lines[0])
		}
	}
}
