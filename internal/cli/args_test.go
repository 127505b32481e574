package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// Bad arguments are refused before any request, in one line on stderr
// with exit code 1 (no config is needed to find them).
func TestBadArguments(t *testing.T) {
	dir := t.TempDir()
	noConfig := filepath.Join(dir, "none.conf")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"scale", "shop/web=-1"}, `"shop/web=-1": replicas must be a whole number from 0 to 1000`},
		{[]string{"scale", "shop/web=abc"}, `"shop/web=abc": replicas must be a whole number from 0 to 1000`},
		{[]string{"scale", "shop/web=1001"}, `"shop/web=1001": replicas must be a whole number from 0 to 1000`},
		{[]string{"scale", "shop/web=99999999999999999999"}, "replicas must be a whole number from 0 to 1000"},
		{[]string{"scale", "shop/web=2", "shopweb=2"}, `"shopweb": expected project/service`},
		{[]string{"scale", "shop/web"}, `"shop/web": expected project/service=N`},
		{[]string{"scale", "/web=1"}, `"/web": expected project/service`},
		{[]string{"scale", "shop/web=1", "shop/db=1", "shop/web=2"}, "shop/web is named twice"},
		{[]string{"deploy", "-f", filepath.Join(dir, "missing.yml")}, "read compose file: open " + filepath.Join(dir, "missing.yml") + ": no such file or directory"},
		{[]string{"deploy", "-f", dir}, "is a directory"},
		{[]string{"ps"}, "no client config at " + noConfig},
		{[]string{"--config", dir, "ps"}, "is a directory"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := tc.args
			if args[0] != "--config" {
				args = append([]string{"--config", noConfig}, args...)
			}
			code := Main(args, &out, &errOut)
			got := errOut.String()
			if code != 1 || out.Len() != 0 {
				t.Fatalf("exit %d, stdout %q: want 1 and nothing", code, out.String())
			}
			if strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "ruche: ") || !strings.Contains(got, tc.want) {
				t.Fatalf("stderr %q: want one line saying %q", got, tc.want)
			}
		})
	}
}
