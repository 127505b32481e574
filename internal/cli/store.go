package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/daemon"
)

// addStoreFlags adds the store flags of `ruche up` (and `ruche server`)
// to f; the returned func checks them and fills sc, before the daemon
// starts.
func addStoreFlags(f *pflag.FlagSet, sc *daemon.StoreConfig) func() error {
	quota := f.String("store-quota", "2GiB", "embedded store's size limit (etcd refuses writes beyond it; status warns from 80%)")
	f.StringSliceVar(&sc.Endpoints, "store-endpoints", nil, "client URLs of an external etcd cluster to use instead of the embedded one (comma-separated)")
	f.StringVar(&sc.CAFile, "store-ca", "", "PEM CA that signed the external etcd's certificates (https endpoints)")
	f.StringVar(&sc.CertFile, "store-cert", "", "client certificate for the external etcd (PEM)")
	f.StringVar(&sc.KeyFile, "store-key", "", "key of --store-cert (PEM)")
	return func() error {
		n, err := parseBytes(*quota)
		if err != nil {
			return fmt.Errorf("--store-quota: %w", err)
		}
		if n < 64<<20 {
			return fmt.Errorf("--store-quota %s: at least 64MiB", *quota)
		}
		if len(sc.Endpoints) > 0 && f.Changed("store-quota") {
			return fmt.Errorf("--store-quota applies to the embedded store; an external etcd's quota is its own --quota-backend-bytes")
		}
		if len(sc.Endpoints) == 0 && (sc.CAFile != "" || sc.CertFile != "" || sc.KeyFile != "") {
			return fmt.Errorf("--store-ca/--store-cert/--store-key need --store-endpoints")
		}
		sc.Quota = n
		return nil
	}
}

// parseBytes reads a size: bytes, or a number with a binary unit
// (KiB, MiB, GiB, TiB; K, M, G, T and KB, MB, GB, TB mean the same).
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix []string
		mult   int64
	}{
		{[]string{"TiB", "TB", "T"}, 1 << 40}, {[]string{"GiB", "GB", "G"}, 1 << 30},
		{[]string{"MiB", "MB", "M"}, 1 << 20}, {[]string{"KiB", "KB", "K"}, 1 << 10}, {[]string{"B"}, 1},
	} {
		found := false
		for _, suf := range u.suffix {
			if strings.HasSuffix(t, suf) {
				t, mult, found = strings.TrimSpace(strings.TrimSuffix(t, suf)), u.mult, true
				break
			}
		}
		if found {
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want a size such as 2GiB or 512MiB", s)
	}
	return int64(v * float64(mult)), nil
}

// printStore writes the store lines of `ruche status`: size against the
// quota, then one warning line per problem (near the quota, alarm raised,
// store not answering).
func printStore(w io.Writer, s client.StoreStatus) {
	if s.Error != "" {
		fmt.Fprintf(w, "store: %s, healthy=false\n", s.Endpoint)
		fmt.Fprintf(w, "warning: the store does not answer: %s\n", s.Error)
		return
	}
	inUse := ""
	if s.DBSizeInUse > 0 {
		inUse = fmt.Sprintf(" (%s in use)", bytesHuman(s.DBSizeInUse))
	}
	members := ""
	if s.Members > 1 {
		members = fmt.Sprintf(", %d members", s.Members)
	}
	fmt.Fprintf(w, "store: %s%s, %s of %s%s, revision %d, healthy=%v\n", s.Endpoint, members,
		bytesHuman(s.DBSize), bytesHuman(s.Quota), inUse, s.Revision, s.Healthy)
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}
