package cli

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/daemon"
)

func TestPrintStore(t *testing.T) {
	tests := []struct {
		name string
		in   client.StoreStatus
		want string
	}{
		{"healthy", client.StoreStatus{Endpoint: "embedded etcd", DBSize: 20 << 20, DBSizeInUse: 5 << 20, Quota: 2 << 30, Revision: 7, Healthy: true},
			"store: embedded etcd, 20.0 MiB of 2.0 GiB (5.0 MiB in use), revision 7, healthy=true\n"},
		{"near quota", client.StoreStatus{Endpoint: "etcd http://e1:2379,http://e2:2379", Members: 2, DBSize: 1800 << 20, Quota: 2 << 30, Revision: 9, Healthy: true,
			Warnings: []string{"store is nearly full: 87% of its quota (etcd refuses writes at 100%)"}},
			"store: etcd http://e1:2379,http://e2:2379, 2 members, 1.8 GiB of 2.0 GiB, revision 9, healthy=true\n" +
				"warning: store is nearly full: 87% of its quota (etcd refuses writes at 100%)\n"},
		{"unreachable", client.StoreStatus{Endpoint: "etcd http://e1:2379", Error: "context deadline exceeded"},
			"store: etcd http://e1:2379, healthy=false\nwarning: the store does not answer: context deadline exceeded\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printStore(&b, tc.in)
			if got := b.String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"2GiB", 2 << 30, false},
		{"512MiB", 512 << 20, false},
		{"1.5G", 3 << 29, false},
		{"8M", 8 << 20, false},
		{"1048576", 1 << 20, false},
		{"100B", 100, false},
		{"lots", 0, true},
		{"-1G", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseBytes(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("got %d, %v; want %d, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestStoreFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want daemon.StoreConfig
		err  string
	}{
		{"defaults", nil, daemon.StoreConfig{Quota: 2 << 30}, ""},
		{"quota", []string{"--store-quota", "4GiB"}, daemon.StoreConfig{Quota: 4 << 30}, ""},
		{"too small", []string{"--store-quota", "1MiB"}, daemon.StoreConfig{}, "at least 64MiB"},
		{"external", []string{"--store-endpoints", "https://10.0.0.1:2379,https://10.0.0.2:2379", "--store-ca", "ca.pem"},
			daemon.StoreConfig{Quota: 2 << 30, Endpoints: []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}, CAFile: "ca.pem"}, ""},
		{"quota with external", []string{"--store-endpoints", "http://e:2379", "--store-quota", "4GiB"}, daemon.StoreConfig{}, "embedded store"},
		{"tls without endpoints", []string{"--store-cert", "c.pem"}, daemon.StoreConfig{}, "need --store-endpoints"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := pflag.NewFlagSet("up", pflag.ContinueOnError)
			var sc daemon.StoreConfig
			check := addStoreFlags(f, &sc)
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := check()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(sc) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v, want %+v", sc, tc.want)
			}
		})
	}
}
