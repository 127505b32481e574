package initbin

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestInstall: the init is written with mode 0755 whatever the umask,
// left alone (same file) when unchanged, replaced by a rename when it
// differs (an open copy keeps its content), and leaves no temporary file;
// a directory that does not exist is an error that writes nothing.
func TestInstall(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p, err := install(dir, []byte("one"))
	if err != nil || p != filepath.Join(dir, Name) {
		t.Fatalf("install: %q, %v", p, err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed: %v, %v; want mode 0755", fi.Mode(), err)
	}
	if _, err := install(dir, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(p); !os.SameFile(fi, fi2) {
		t.Error("an unchanged init was written again")
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := install(dir, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Errorf("after a change: %q", b)
	}
	var kept bytes.Buffer
	if _, err := kept.ReadFrom(f); err != nil || kept.String() != "one" {
		t.Errorf("the file open before the change reads %q, %v; want it kept", kept.String(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left in the directory: %v", ents)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := install(missing, []byte("one")); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("missing directory: %v", err)
	}
}

// TestEmbeddedIsCurrent: the init this build carries is static, and is
// what this package's go:generate line builds from the current sources,
// byte for byte (a stale one would run an older wait in every container).
func TestEmbeddedIsCurrent(t *testing.T) {
	b := Embedded()
	if b == nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("this build carries no init: run go generate ./internal/initbin (make build does)")
		}
		t.Skip("built without go generate ./internal/initbin: no init embedded")
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("embedded init: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("embedded init is dynamically linked; it runs in containers of any image")
		}
	}
	args := generateLine(t)
	out := filepath.Join(t.TempDir(), Name)
	for i := range args {
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1] = out
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, o)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, b) {
		t.Fatal("the embedded init is not built from the current sources: run go generate ./internal/initbin (make build does), then rebuild")
	}
}

// generateLine is the command of initbin.go's go:generate line.
func generateLine(t *testing.T) []string {
	src, err := os.ReadFile("initbin.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//go:generate "); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatal("initbin.go has no go:generate line")
	return nil
}
