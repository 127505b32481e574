package cli

import (
	"bytes"
	"testing"

	"github.com/ruche-platform/ruche/client"
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
