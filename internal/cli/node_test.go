package cli

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
)

func TestParseLabelArgs(t *testing.T) {
	tests := []struct {
		args    []string
		want    client.NodeLabelRequest
		wantErr bool
	}{
		{[]string{"zone=home"}, client.NodeLabelRequest{Set: map[string]string{"zone": "home"}}, false},
		{[]string{"zone=home", "ssd-", "empty="}, client.NodeLabelRequest{Set: map[string]string{"zone": "home", "empty": ""}, Remove: []string{"ssd"}}, false},
		{[]string{"a=b=c"}, client.NodeLabelRequest{Set: map[string]string{"a": "b=c"}}, false},
		{[]string{"zone"}, client.NodeLabelRequest{}, true},
		{[]string{"=x"}, client.NodeLabelRequest{}, true},
		{[]string{"-"}, client.NodeLabelRequest{}, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := parseLabelArgs(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRebalanceTarget(t *testing.T) {
	tests := []struct {
		args             []string
		project, service string
		wantErr          bool
	}{
		{nil, "", "", false},
		{[]string{"shop"}, "shop", "", false},
		{[]string{"shop/web"}, "shop", "web", false},
		{[]string{"shop/"}, "", "", true},
		{[]string{"/web"}, "", "", true},
		{[]string{"a/b/c"}, "", "", true},
	}
	for _, tt := range tests {
		p, s, err := parseRebalanceTarget(tt.args)
		if (err != nil) != tt.wantErr || p != tt.project || s != tt.service {
			t.Errorf("%v: got %q %q %v, want %q %q (error %v)", tt.args, p, s, err, tt.project, tt.service, tt.wantErr)
		}
	}
}

func TestPrintNodes(t *testing.T) {
	var out bytes.Buffer
	g := &globals{stdout: &out}
	err := printNodes(g, []client.Node{
		{ID: "n1", Hostname: "box", Status: "ready", Availability: "active", Replicas: 3,
			Capacity: client.ResourceAmounts{CPUs: 2, Memory: 4 << 30}, Labels: map[string]string{"zone": "home", "a": "b"},
			Load: &client.NodeLoad{CPU: 0.45, Memory: 1 << 30, Load1: 0.5}},
		{ID: "n2", Status: "down", Availability: "drain", Capacity: client.ResourceAmounts{CPUs: 4, Memory: 8 << 30}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := [][]string{
		{"NODE", "HOSTNAME", "STATUS", "AVAILABILITY", "CPU", "MEM", "LOAD1", "REPLICAS", "LABELS"},
		{"n1", "box", "ready", "active", "0.5/2", "1.0", "GiB/4.0", "GiB", "0.50", "3", "a=b,zone=home"},
		{"n2", "down", "drain", "-/4", "-/8.0", "GiB", "-", "0"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, l := range lines {
		if got := strings.Fields(l); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d: got %q, want %q", i, got, want[i])
		}
	}
}

func TestEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var at []time.Duration
		start := time.Now()
		done := make(chan error)
		go func() {
			done <- every(ctx, 2*time.Second, func(context.Context) error {
				at = append(at, time.Since(start))
				return nil
			})
		}()
		time.Sleep(5 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("every after ^C: got %v, want nil", err)
		}
		if want := []time.Duration{0, 2 * time.Second, 4 * time.Second}; !reflect.DeepEqual(at, want) {
			t.Errorf("runs at %v, want %v", at, want)
		}
		boom := errors.New("boom")
		if err := every(context.Background(), time.Second, func(context.Context) error { return boom }); err != boom {
			t.Errorf("error: got %v, want boom", err)
		}
	})
}
