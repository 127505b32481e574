package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/internal/apiserver"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/store"
)

// TestDebugProfile runs `ruche debug profile` against the API: profiles
// land in their file (mode 0600, nothing partial left), bad input is
// refused before or by the API and writes nothing.
func TestDebugProfile(t *testing.T) {
	dir := t.TempDir()
	st := store.NewMemory()
	defer st.Close()
	st.Txn(context.Background(), nil, store.Put(store.TokenKey(apiserver.HashToken("tok")), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := apiserver.New(apiserver.Config{}, apiserver.Deps{Store: st, Log: log, Events: events.NewRecorder(st, log), Registry: prometheus.NewRegistry()})
	conf := serveAPI(t, api, "tok")
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := Main(append([]string{"--config", conf, "debug", "profile"}, args...), &out, &errOut)
		return code, out.String() + errOut.String()
	}

	for _, args := range [][]string{{"heap", "heap.pprof"}, {"cpu", "--seconds", "1", "cpu.pprof"}} {
		file := filepath.Join(dir, args[len(args)-1])
		code, out := run(append(args[:len(args)-1:len(args)-1], file)...)
		if code != 0 || !strings.Contains(out, "go tool pprof -top "+file) {
			t.Fatalf("%v: exit %d: %s", args, code, out)
		}
		b, err := os.ReadFile(file)
		if err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Fatalf("%v: the file is not a pprof profile (%v): %.40q", args, err, b)
		}
		if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
			t.Errorf("%v: mode %v, want 0600", args, fi.Mode().Perm())
		}
		if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
			t.Errorf("%v: partial file left: %v", args, err)
		}
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"heap", filepath.Join(dir, "heap.pprof")}, "exists"},
		{[]string{"heap", "--seconds", "5", filepath.Join(dir, "h2.pprof")}, "--seconds is for the cpu profile"},
		{[]string{"cpu", "--seconds", "500", filepath.Join(dir, "c2.pprof")}, "from 1 to 120"},
		{[]string{"cpu", "--seconds", "-1", filepath.Join(dir, "c3.pprof")}, "from 1 to 120"},
		{[]string{"nope", filepath.Join(dir, "n.pprof")}, `no profile "nope"`},
	}
	for _, tc := range bad {
		code, out := run(tc.args...)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want an error with %q: %s", tc.args, code, tc.want, out)
		}
		file := tc.args[len(tc.args)-1]
		if tc.want != "exists" {
			if _, err := os.Stat(file); !os.IsNotExist(err) {
				t.Errorf("%v: %s was written", tc.args, file)
			}
		}
		if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
			t.Errorf("%v: partial file left", tc.args)
		}
	}
}
