package nodeapi

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
)

func TestClientLogs(t *testing.T) {
	ca := newCA(t)
	logs := &fakeLogs{lines: []string{"web.1 | one", "web.2 | two"}}
	srv := startNode(t, ca, "n2", logs)
	mgr, err := ManagerCert(ca, "m1")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(mgr, ca.Pool())
	since := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	var out strings.Builder
	err = c.Logs(context.Background(), "n2", hostOf(srv), "shop", "web", agent.LogOptions{Since: since, Tail: 5}, &out)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if got, want := out.String(), "web.1 | one\nweb.2 | two\n"; got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}
	if got, want := logs.opts(), []agent.LogOptions{{Since: since, Tail: 5}}; !reflect.DeepEqual(got, want) {
		t.Errorf("options at the node: got %+v, want %+v", got, want)
	}

	t.Run("failure after the first byte", func(t *testing.T) {
		logs.err = errors.New("engine gone")
		out.Reset()
		err := c.Logs(context.Background(), "n2", hostOf(srv), "shop", "web", agent.LogOptions{}, &out)
		if err == nil || !strings.Contains(err.Error(), "engine gone") {
			t.Errorf("got %v, want the node's error", err)
		}
		if out.Len() != 0 {
			t.Errorf("output: got %q, want nothing (the error is not a log line)", out.String())
		}
		logs.err = nil
	})
	t.Run("wrong node identity", func(t *testing.T) {
		// The certificate at that address is n2's, not n3's.
		err := c.Logs(context.Background(), "n3", hostOf(srv), "shop", "web", agent.LogOptions{}, io.Discard)
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("got %v, want a certificate error", err)
		}
	})
	t.Run("missing service", func(t *testing.T) {
		err := c.Logs(context.Background(), "n2", hostOf(srv), "shop", "", agent.LogOptions{}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("got %v, want 400", err)
		}
	})
}

// TestOnlyManagers: the node API answers manager certificates of its
// cluster only.
func TestOnlyManagers(t *testing.T) {
	ca := newCA(t)
	srv := startNode(t, ca, "n2", &fakeLogs{lines: []string{"web.1 | secret"}})
	other := newCA(t)
	call := func(certs []tls.Certificate) (int, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: certs, RootCAs: ca.Pool(), ServerName: "n2"}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/v1/logs?project=shop&service=web")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(b), "secret") && resp.StatusCode != http.StatusOK {
			t.Errorf("refused request got the logs: %q", b)
		}
		return resp.StatusCode, nil
	}
	tests := []struct {
		name   string
		certs  []tls.Certificate
		status int // 0: the handshake fails
	}{
		{name: "manager", certs: []tls.Certificate{nodeCert(t, ca, "m1", pki.RoleManager)}, status: http.StatusOK},
		{name: "agent", certs: []tls.Certificate{nodeCert(t, ca, "n3", pki.RoleAgent)}, status: http.StatusForbidden},
		{name: "manager of another cluster", certs: []tls.Certificate{nodeCert(t, other, "m1", pki.RoleManager)}},
		{name: "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := call(tt.certs)
			if tt.status == 0 {
				if err == nil {
					t.Fatalf("got status %d, want a failed handshake", got)
				}
				return
			}
			if err != nil || got != tt.status {
				t.Errorf("got %d %v, want %d", got, err, tt.status)
			}
		})
	}
}

func TestParseLogOptions(t *testing.T) {
	since := "2026-11-22T10:00:00.5Z"
	tests := []struct {
		follow, since, tail string
		want                agent.LogOptions
		err                 bool
	}{
		{want: agent.LogOptions{}},
		{follow: "true", tail: "10", since: since, want: agent.LogOptions{Follow: true, Tail: 10, Since: time.Date(2026, 11, 22, 10, 0, 0, 5e8, time.UTC)}},
		{follow: "1", want: agent.LogOptions{Follow: true}},
		{since: "10m", err: true},
		{tail: "x", err: true},
	}
	for _, tt := range tests {
		got, err := parseLogOptions(tt.follow, tt.since, tt.tail)
		if (err != nil) != tt.err || (!tt.err && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("parse(%q, %q, %q): got %+v, %v; want %+v, err %v", tt.follow, tt.since, tt.tail, got, err, tt.want, tt.err)
		}
	}
}
