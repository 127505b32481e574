package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/ruche-platform/ruche/client"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// fixture is one compose project of testdata/: a directory with
// compose.yml (and compose.override.yml, .env when present), or one file
// of testdata/bad/. Its outcome is written next to it: <name>.golden.json
// when it loads, <name>.problems when it does not, and <name>.warnings
// when it warns.
type fixture struct {
	name   string
	files  []string
	env    map[string]string
	golden string // path without extension
}

func fixtures(t *testing.T) []fixture {
	t.Helper()
	var out []fixture
	dirs, err := filepath.Glob("testdata/*/compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		fx := fixture{name: filepath.Base(dir), files: []string{f}, env: map[string]string{}, golden: dir}
		if o := filepath.Join(dir, "compose.override.yml"); exists(o) {
			fx.files = append(fx.files, o)
		}
		if e := filepath.Join(dir, ".env"); exists(e) {
			if fx.env, err = dotenv.GetEnvFromFile(map[string]string{}, []string{e}); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, fx)
	}
	bad, err := filepath.Glob("testdata/bad/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range bad {
		name := strings.TrimSuffix(filepath.Base(f), ".yml")
		out = append(out, fixture{name: "bad/" + name, files: []string{f}, env: map[string]string{}, golden: strings.TrimSuffix(f, ".yml")})
	}
	if len(out) < 10 {
		t.Fatalf("found %d fixtures, the glob is wrong", len(out))
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// machineIndependent replaces the absolute path of testdata/ in s.
func machineIndependent(t *testing.T, s []byte) []byte {
	t.Helper()
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(s, []byte(abs), []byte("<testdata>"))
}

func TestFixtures(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			var warnings bytes.Buffer
			spec, err := Load(context.Background(), Options{
				Files: fx.files,
				Env:   fx.env,
				Warn:  func(p Problem) { warnings.WriteString(p.String() + "\n") },
			})
			var got []byte
			ext, otherExt := ".golden.json", ".problems"
			var cerr *Error
			switch {
			case err == nil:
				if got, err = json.MarshalIndent(spec, "", "  "); err != nil {
					t.Fatal(err)
				}
				got = append(got, '\n')
				roundTrip(t, spec, got)
			case errors.As(err, &cerr):
				if spec != nil {
					t.Errorf("Load returned a spec with its error")
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("errors.Is(err, ErrInvalid) = false")
				}
				got = []byte(cerr.Error() + "\n")
				ext, otherExt = otherExt, ext
			default:
				t.Fatalf("Load: %v", err)
			}
			compareGolden(t, fx.golden+ext, machineIndependent(t, got))
			compareGolden(t, fx.golden+".warnings", machineIndependent(t, warnings.Bytes()))
			if exists(fx.golden + otherExt) {
				if *update {
					os.Remove(fx.golden + otherExt)
				} else {
					t.Errorf("%s exists, but Load gave a %s result", fx.golden+otherExt, ext)
				}
			}
		})
	}
}

// roundTrip checks that the spec survives its own JSON, as it travels from
// the CLI to the API.
func roundTrip(t *testing.T, spec *client.ProjectSpec, data []byte) {
	t.Helper()
	var back client.ProjectSpec
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("unmarshal spec: %v", err)
	}
	if !reflect.DeepEqual(&back, spec) {
		t.Errorf("spec changed through JSON:\ngot  %+v\nwant %+v", back, *spec)
	}
}

// compareGolden compares got with the file, or rewrites the file with
// -update. An empty got means the file must not exist.
func compareGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if len(got) == 0 {
			os.Remove(file)
			return
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) && len(got) == 0 {
		return
	}
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", file, got, want)
	}
}
