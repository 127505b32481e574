package compose

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoadBytes: whatever document the API server is sent, LoadBytes
// returns a spec or an error, never panics. The corpus starts from every
// compose file under testdata (the good and the bad ones).
// `go test -fuzz FuzzLoadBytes ./internal/compose` explores further.
func FuzzLoadBytes(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yml")
	more, _ := filepath.Glob("testdata/*/*.yaml")
	for _, p := range append(files, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("services: {web: {image: x, deploy: {replicas: -1}}}"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		spec, err := LoadBytes(ctx, "compose.yml", doc, "fuzz", nil)
		if err == nil && spec == nil {
			t.Fatal("no spec and no error")
		}
		var cerr *Error
		if err != nil && errors.As(err, &cerr) && len(cerr.Lines()) == 0 {
			t.Fatalf("an *Error without a problem: %v", err)
		}
	})
}

// FuzzParseRule: a Traefik rule never panics the parser.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"Host(`a.example.org`)",
		"Host(`a`) || Host(`b`)",
		"Host(`a`) && PathPrefix(`/x`)",
		"(Host(`a`) || Host(`b`)) && !PathPrefix(`/admin`)",
		"HostRegexp(`{sub:[a-z]+}.example.org`)",
		"Host(\"a\", \"b\")",
		"Host(`a`",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseRule(s)
	})
}
