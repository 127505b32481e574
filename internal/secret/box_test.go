package secret

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	b, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("s3cret-password")
	sealed, err := b.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("sealed value contains the plain text")
	}
	// The same key file opens it again.
	b2, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b2.Open(sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("got %q %v, want %q", got, err, plain)
	}
	other, _ := LoadOrCreate(filepath.Join(t.TempDir(), "key"))
	if _, err := other.Open(sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("other key: got %v, want ErrCorrupt", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := b.Open(sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tampered: got %v, want ErrCorrupt", err)
	}
}
