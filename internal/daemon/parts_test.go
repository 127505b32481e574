package daemon

import (
	"context"
	"errors"
	"testing"
)

// TestPartsFirstFailure: the first failure is reported, later ones never
// block their part, and wait returns once every part has.
func TestPartsFirstFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps := newParts(ctx)
	boom := errors.New("boom")
	release := make(chan struct{})
	ps.run("first", func() error { return boom })
	err := <-ps.failed()
	if !errors.Is(err, boom) || err.Error() != "first: boom" {
		t.Fatalf("got %v, want first: boom", err)
	}
	for range 10 { // more failures than any buffer: none may block
		ps.run("later", func() error { <-release; return boom })
	}
	ps.run("quiet", func() error { <-ctx.Done(); return ctx.Err() })
	close(release)
	cancel()
	ps.wait()
	select {
	case err := <-ps.failed():
		if err.Error() != "later: boom" {
			t.Errorf("after the first was taken: got %v", err)
		}
	default:
	}
}
