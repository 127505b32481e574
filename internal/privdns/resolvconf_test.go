package privdns

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestHostUpstreams(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
		err     error
	}{
		{"one", "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n", []string{"127.0.0.53:53"}, nil},
		{"order and IPv6", "# generated\nsearch example.org\nnameserver 192.0.2.10\nnameserver 2001:db8::1\n; comment\nnameserver fe80::1%eth0\n",
			[]string{"192.0.2.10:53", "[2001:db8::1]:53", "[fe80::1%eth0]:53"}, nil},
		{"spaces and tabs", "  nameserver\t192.0.2.1  \n", []string{"192.0.2.1:53"}, nil},
		{"bad lines skipped", "nameserver\nnameserver dns.example\nnameservers 192.0.2.2\nnameserver 192.0.2.3\n", []string{"192.0.2.3:53"}, nil},
		{"no nameserver", "search example.org\noptions ndots:2\n", nil, ErrNoNameserver},
		{"empty", "", nil, ErrNoNameserver},
		{"only bad nameservers", "nameserver dns.example\n", nil, ErrNoNameserver},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := HostUpstreams(path)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := HostUpstreams(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: error = %v, want ErrNotExist", err)
	}
}

// TestHostUpstreamsAreValidUpstreams checks that what HostUpstreams returns
// is what Start accepts.
func TestHostUpstreamsAreValidUpstreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 127.0.0.1\nnameserver ::1\nnameserver fe80::1%lo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ups, err := HostUpstreams(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newServer(Config{Domain: "shop.internal", Lookup: lookupNames, Upstreams: ups}); err != nil {
		t.Errorf("Start would refuse %q: %v", ups, err)
	}
}
