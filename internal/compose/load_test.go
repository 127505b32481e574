package compose

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
)

// problemLines returns err's problems one per line, or fails the test when
// err is not an *Error.
func problemLines(t *testing.T, err error) []string {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("got error %v (%T), want *Error", err, err)
	}
	return cerr.Lines()
}

func TestLoadBytes(t *testing.T) {
	tests := []struct {
		name        string
		doc         string
		projectName string
		env         map[string]string
		want        []string // problems; nil means it loads
		check       func(t *testing.T, spec *client.ProjectSpec)
	}{
		{
			name: "file references are refused with their line",
			doc: `name: shop
services:
  web:
    image: nginx
    env_file: web.env
    label_file: labels.txt
    volumes:
      - ./data:/data
      - ~/cache:/cache
      - /srv/shop:/srv
      - type: bind
        source: conf
        target: /etc/conf
secrets:
  token:
    file: ./token.txt
configs:
  conf:
    file: conf.yml
`,
			want: []string{
				"posted.yml:5: services.web.env_file: " + needsFilesReason,
				"posted.yml:6: services.web.label_file: " + needsFilesReason,
				`posted.yml:8: services.web.volumes[0]: relative bind source "./data" is ` + needsFilesReason,
				`posted.yml:9: services.web.volumes[1]: relative bind source "~/cache" is ` + needsFilesReason,
				`posted.yml:12: services.web.volumes[3].source: relative bind source "conf" is ` + needsFilesReason,
				"posted.yml:16: secrets.token.file: " + needsFilesReason,
				"posted.yml:19: configs.conf.file: " + needsFilesReason,
			},
		},
		{
			name: "absolute binds, environment secrets and content configs load",
			doc: `name: shop
services:
  web:
    image: nginx:${TAG}
    volumes: [/srv/shop:/srv:ro]
    secrets: [token]
    configs: [motd]
secrets:
  token:
    environment: TOKEN
configs:
  motd:
    content: hello ${WHO}
`,
			env: map[string]string{"TAG": "1.27", "TOKEN": "s3cret", "WHO": "world"},
			check: func(t *testing.T, spec *client.ProjectSpec) {
				web := spec.Services["web"]
				if got, want := web.Image, "nginx:1.27"; got != want {
					t.Errorf("image: got %q, want %q", got, want)
				}
				if got, want := web.Mounts, []client.MountSpec{{Type: client.MountBind, Source: "/srv/shop", Target: "/srv", ReadOnly: true}}; !slices.Equal(got, want) {
					t.Errorf("mounts: got %+v, want %+v", got, want)
				}
				if got, want := string(spec.Secrets["token"].Data), "s3cret"; got != want {
					t.Errorf("secret: got %q, want %q", got, want)
				}
				if got, want := string(spec.Configs["motd"].Data), "hello world"; got != want {
					t.Errorf("config: got %q, want %q", got, want)
				}
			},
		},
		{
			name:        "the name given wins over name:",
			doc:         "name: from-file\nservices:\n  web:\n    image: nginx\n",
			projectName: "given",
			check: func(t *testing.T, spec *client.ProjectSpec) {
				if spec.Name != "given" {
					t.Errorf("name: got %q, want %q", spec.Name, "given")
				}
			},
		},
		{
			name: "name: is interpolated",
			doc:  "name: shop-${STAGE}\nservices:\n  web:\n    image: nginx\n",
			env:  map[string]string{"STAGE": "test"},
			check: func(t *testing.T, spec *client.ProjectSpec) {
				if spec.Name != "shop-test" {
					t.Errorf("name: got %q, want %q", spec.Name, "shop-test")
				}
			},
		},
		{
			name: "parallelism 0 updates all at once, as in compose",
			doc: `name: shop
services:
  web:
    image: nginx
    deploy:
      update_config: {parallelism: 0}
      rollback_config: {parallelism: 0}
  api:
    image: nginx
    deploy:
      update_config: {parallelism: 2}
      rollback_config: {delay: 5s}
`,
			check: func(t *testing.T, spec *client.ProjectSpec) {
				for _, c := range []struct {
					what      string
					got, want int
				}{
					{"web update_config", spec.Services["web"].UpdateConfig.Parallelism, client.ParallelismAll},
					{"web rollback_config", spec.Services["web"].RollbackConfig.Parallelism, client.ParallelismAll},
					{"api update_config", spec.Services["api"].UpdateConfig.Parallelism, 2},
					{"api rollback_config (unset: the default)", spec.Services["api"].RollbackConfig.Parallelism, 0},
				} {
					if c.got != c.want {
						t.Errorf("%s parallelism: got %d, want %d", c.what, c.got, c.want)
					}
				}
			},
		},
		{
			name: "a project needs a name",
			doc:  "services:\n  web:\n    image: nginx\n",
			want: []string{"posted.yml: name: the project needs a name: set name: or pass one"},
		},
		{
			name: "the server's environment does not leak in",
			doc:  "name: shop\nservices:\n  web:\n    image: nginx:${HOME}x\n",
			check: func(t *testing.T, spec *client.ProjectSpec) {
				if got := spec.Services["web"].Image; got != "nginx:x" {
					t.Errorf("image: got %q, want %q", got, "nginx:x")
				}
			},
		},
		{
			name: "a secret from an unset variable",
			doc:  "name: shop\nservices:\n  web:\n    image: nginx\n    secrets: [token]\nsecrets:\n  token:\n    environment: TOKEN\n",
			want: []string{"posted.yml:8: secrets.token.environment: variable TOKEN is not set"},
		},
		{
			name: "a dependency is reported at the line naming it, in both forms",
			doc: `name: shop
services:
  web:
    image: nginx
    depends_on:
      - db
      - cache
  api:
    image: nginx
    depends_on:
      queue:
        condition: service_started
  db:
    image: postgres
`,
			want: []string{
				`posted.yml:7: services.web.depends_on.cache: service "cache" does not exist in the project`,
				`posted.yml:11: services.api.depends_on.queue: service "queue" does not exist in the project`,
			},
		},
		{
			name: "a placement constraint is reported at its own line",
			doc: `name: shop
services:
  web:
    image: nginx
    deploy:
      placement:
        constraints:
          - node.role == worker
          - node.label.zone == east
`,
			want: []string{
				`posted.yml:9: services.web.deploy.placement.constraints[1]: "node.label.zone == east": "node.label.zone" is not node.id, node.hostname, node.role, node.platform.os, node.platform.arch or node.labels.<name>`,
			},
		},
		{
			name:        "an empty document",
			doc:         "",
			projectName: "shop",
			want:        []string{"posted.yml: empty compose file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := LoadBytes(context.Background(), "posted.yml", []byte(tt.doc), tt.projectName, tt.env)
			if errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("LoadBytes tried to read a file: %v", err)
			}
			if tt.want != nil {
				if got := problemLines(t, err); !slices.Equal(got, tt.want) {
					t.Errorf("problems:\ngot  %q\nwant %q", got, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadBytes: %v", err)
			}
			tt.check(t, spec)
		})
	}
}

// writeFiles creates files (name -> content) under a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLoadBytesReadsNoFile gives LoadBytes the name of a real compose file
// with other content: what is loaded must be the content given.
func TestLoadBytesReadsNoFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yml": "name: on-disk\nservices:\n  web:\n    image: nginx\n",
		"s.txt":       "secret on disk",
	})
	file := filepath.Join(dir, "compose.yml")
	for _, data := range []string{"", "# nothing\n", "name: posted\nservices:\n  web:\n    image: busybox\n"} {
		spec, err := LoadBytes(context.Background(), file, []byte(data), "", nil)
		if err == nil && (spec.Name != "posted" || spec.Services["web"].Image != "busybox") {
			t.Errorf("LoadBytes(%q) loaded %+v, not the content given", data, spec)
		}
		if err != nil && strings.Contains(err.Error(), "on-disk") {
			t.Errorf("LoadBytes(%q) read the file on disk: %v", data, err)
		}
	}
}

func TestLoadDefaultEnv(t *testing.T) {
	root := writeFiles(t, map[string]string{
		"My_Project.v2/compose.yml": "services:\n  web:\n    image: nginx:${FROM_DOTENV}-${SHADOWED}\n",
		"My_Project.v2/.env":        "FROM_DOTENV=dotenv\nSHADOWED=dotenv\n",
	})
	t.Setenv("SHADOWED", "process")
	spec, err := Load(context.Background(), Options{Files: []string{filepath.Join(root, "My_Project.v2", "compose.yml")}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, want := spec.Services["web"].Image, "nginx:dotenv-process"; got != want {
		t.Errorf("image: got %q, want %q (the process environment wins over .env)", got, want)
	}
	if got, want := spec.Name, "my-project-v2"; got != want {
		t.Errorf("name from the directory: got %q, want %q", got, want)
	}
}

func TestLoadOverrideFileProblems(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yml":          "services:\n  web:\n    image: nginx\n",
		"compose.override.yml": "services:\n  web:\n    ports:\n      - \"8080:80\"\n    privileged: true\n",
	})
	base, override := filepath.Join(dir, "compose.yml"), filepath.Join(dir, "compose.override.yml")
	_, err := Load(context.Background(), Options{Files: []string{base, override}, Env: map[string]string{}})
	want := []string{override + ":5: services.web.privileged: not supported by ruche (" + rules["services.*.privileged"].refuse + ")"}
	if got := problemLines(t, err); !slices.Equal(got, want) {
		t.Errorf("problems:\ngot  %q\nwant %q", got, want)
	}
}

// loadWarnings loads dir/compose.yml, which must load, and returns its
// warnings with paths relative to dir.
func loadWarnings(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	_, err := Load(context.Background(), Options{
		Files: []string{filepath.Join(dir, "compose.yml")},
		Env:   map[string]string{},
		Warn:  func(p Problem) { got = append(got, strings.TrimPrefix(p.String(), dir+"/")) },
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return got
}

func TestLoadWarnings(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yml": `version: "3.9"
services:
  web:
    image: nginx:${TAG}-$$HOME-${UNSET_TOO}
    environment:
      A: ${TAG}
      B: ${WITH_DEFAULT:-x}
    volumes:
      - ./data:/data:z
`,
	})
	got := loadWarnings(t, dir)
	want := []string{
		"compose.yml:1: version: the version key is obsolete and ignored",
		"compose.yml:9: services.web.volumes[0]: SELinux option :z dropped: ruche does not relabel mounts",
		"compose.yml:4: variable TAG is not set: it reads as an empty string",
		"compose.yml:4: variable UNSET_TOO is not set: it reads as an empty string",
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\ngot  %q\nwant %q", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(context.Background(), Options{}); !errors.Is(err, ErrNoFiles) {
		t.Errorf("no files: got %v, want ErrNoFiles", err)
	}
	_, err := Load(context.Background(), Options{Files: []string{filepath.Join(t.TempDir(), "missing.yml")}})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
	var cerr *Error
	if errors.As(err, &cerr) {
		t.Errorf("a missing file is not a problem of the file: got %v", cerr)
	}
}

// TestLoadAnchors checks that keys merged from an anchor are checked, and
// reported at the anchor's line, once per service that merges them.
func TestLoadAnchors(t *testing.T) {
	doc := `name: shop
x-base: &base
  image: nginx
  logging:
    driver: json-file
services:
  a:
    <<: *base
  b:
    <<: *base
    logging:
      driver: syslog
`
	_, err := LoadBytes(context.Background(), "c.yml", []byte(doc), "", nil)
	reason := "not supported by ruche (" + rules["services.*.logging"].refuse + ")"
	want := []string{
		"c.yml:4: services.a.logging: " + reason,
		"c.yml:11: services.b.logging: " + reason,
	}
	if got := problemLines(t, err); !slices.Equal(got, want) {
		t.Errorf("problems:\ngot  %q\nwant %q", got, want)
	}
}

func TestLoadExtends(t *testing.T) {
	doc := `name: shop
services:
  base:
    image: nginx
    environment: {A: "1"}
  web:
    extends: base
    environment: {B: "2"}
  other:
    extends:
      service: base
      file: other.yml
`
	_, err := LoadBytes(context.Background(), "c.yml", []byte(doc), "", nil)
	want := []string{"c.yml:12: services.other.extends.file: not supported by ruche (" + rules["services.*.extends.file"].refuse + ")"}
	if got := problemLines(t, err); !slices.Equal(got, want) {
		t.Errorf("problems:\ngot  %q\nwant %q", got, want)
	}
	spec, err := LoadBytes(context.Background(), "c.yml", []byte(doc[:strings.Index(doc, "  other:")]), "", nil)
	if err != nil {
		t.Fatalf("LoadBytes: %v", err)
	}
	if got := spec.Services["web"]; got.Image != "nginx" || got.Environment["A"] != "1" || got.Environment["B"] != "2" {
		t.Errorf("extended service: got %+v", got)
	}
}

// TestLoadMissingFiles checks that an env_file or label_file that is not
// there is reported at the line that names it, every one of them, and
// that required: false makes an env file optional, as in compose.
func TestLoadMissingFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yml": `name: shop
services:
  web:
    image: nginx
    env_file: ./web.env
  api:
    image: nginx
    env_file:
      - present.env
      - ${ENV_DIR}/api.env
      - path: optional.env
        required: false
      - path: needed.env
        required: "${NEEDED:-true}"
    label_file: [labels.txt]
  worker:
    image: nginx
    env_file: conf
`,
		"present.env": "A=1\n",
		"conf/x":      "",
	})
	_, err := Load(context.Background(), Options{Files: []string{filepath.Join(dir, "compose.yml")}, Env: map[string]string{"ENV_DIR": "envs"}})
	var got []string
	for _, l := range problemLines(t, err) {
		got = append(got, strings.ReplaceAll(l, dir, "<dir>"))
	}
	want := []string{
		"<dir>/compose.yml:5: services.web.env_file: env file <dir>/web.env not found",
		"<dir>/compose.yml:10: services.api.env_file[1]: env file <dir>/envs/api.env not found",
		"<dir>/compose.yml:13: services.api.env_file[3]: env file <dir>/needed.env not found",
		"<dir>/compose.yml:15: services.api.label_file[0]: label file <dir>/labels.txt not found",
		"<dir>/compose.yml:18: services.worker.env_file: env file <dir>/conf is a directory",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\ngot  %q\nwant %q", got, want)
	}
}

// TestLoadXRucheTypo checks that an extension under a service whose name
// is close to x-ruche is not ignored in silence: its routes and settings
// would be lost.
func TestLoadXRucheTypo(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yml": `name: shop
services:
  web:
    image: nginx
    x-ruch:
      routes: [shop.example.org:80]
    x-rouche: {public: true}
    x-route: other tools' extension
    x-backup: {schedule: daily}
`,
	})
	got := loadWarnings(t, dir)
	want := []string{
		"compose.yml:5: services.web.x-ruch: an extension, ignored: did you mean x-ruche?",
		"compose.yml:7: services.web.x-rouche: an extension, ignored: did you mean x-ruche?",
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\ngot  %q\nwant %q", got, want)
	}
}
