// Package initbin carries cmd/ruche-init, the init of containers on
// ruche's networks, inside the ruche binary, and installs it on the node
// for the agent to bind-mount. `make build` (and the end-to-end tests)
// build it first, with `go generate ./internal/initbin`; a ruche built
// without that carries none, and its containers run ruche itself as their
// init, which works but costs each replica start 25 ms of CPU and 30 MB
// more (see internal/netinit).
package initbin

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:generate env CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags=-s -o dist/ruche-init ../../cmd/ruche-init

//go:embed dist
var dist embed.FS

// Name is the installed init's file name.
const Name = "ruche-init"

// Embedded is the init this build carries, or nil if it carries none.
func Embedded() []byte {
	b, err := dist.ReadFile("dist/" + Name)
	if err != nil {
		return nil
	}
	return b
}

// Install writes the embedded init as dir/ruche-init, mode 0755 (it runs
// as the containers' own users too), unless that file already holds it,
// and returns its path. The file is replaced by a rename, so containers
// started from an older one keep theirs. ok is false, and nothing is
// written, when this build carries none.
func Install(dir string) (path string, ok bool, err error) {
	b := Embedded()
	if b == nil {
		return "", false, nil
	}
	path, err = install(dir, b)
	return path, err == nil, err
}

func install(dir string, b []byte) (string, error) {
	path := filepath.Join(dir, Name)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		if err := os.Chmod(path, 0o755); err != nil {
			return "", fmt.Errorf("install %s: %w", path, err)
		}
		return path, nil
	}
	f, err := os.CreateTemp(dir, "."+Name+"-*")
	if err != nil {
		return "", fmt.Errorf("install %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o755)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("install %s: %w", path, err)
	}
	return path, nil
}
