package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/testports"
)

// TestRunElectedFence: a leader whose election key went (as when its
// session is lost, or revoked by a new etcd leader) has its next write
// refused with ErrNotLeader, its context ends, and it campaigns again.
func TestRunElectedFence(t *testing.T) {
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), ClientAddr: testports.Free(t), PeerAddr: testports.Free(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	leading := make(chan struct{}, 1)
	deleted := make(chan struct{})
	second := make(chan error, 1)
	ended := make(chan error, 1)
	runs := 0 // touched by fn only: RunElected runs it once at a time
	lead := func() {
		select {
		case leading <- struct{}{}:
		default:
		}
	}
	elected := func(ctx context.Context) {
		runs++
		if runs > 1 {
			lead()
			<-ctx.Done()
			return
		}
		// The first write goes through before the test deletes the key:
		// it says it leads only then.
		if _, err := e.Txn(ctx, nil, Put("/t/fenced", []byte("1"))); err != nil {
			second <- fmt.Errorf("first write: %w", err)
			return
		}
		lead()
		<-deleted
		_, err := e.Txn(ctx, nil, Put("/t/fenced", []byte("2")))
		second <- err
		<-ctx.Done()
		ended <- ctx.Err()
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		e.RunElected(ctx, "fence-test", "me", elected)
	}()
	defer func() { cancel(); <-stopped }()
	recv := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case err := <-second: // the first write failed
			t.Fatalf("%s: %v", what, err)
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		}
	}
	recv("leading", leading)
	kvs, _, err := e.List(ctx, ElectionPrefix+"fence-test/")
	if err != nil || len(kvs) != 1 {
		t.Fatalf("election keys: %v, %v; want one", kvs, err)
	}
	if _, err := e.Txn(ctx, nil, Delete(kvs[0].Key)); err != nil {
		t.Fatal(err)
	}
	close(deleted)
	if err := <-second; !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write after the key went: %v, want ErrNotLeader", err)
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("context ended without an error")
		}
	case <-ctx.Done():
		t.Fatal("context not ended after the refused write")
	}
	if kv, err := e.Get(ctx, "/t/fenced"); err != nil || string(kv.Value) != "1" {
		t.Errorf("/t/fenced = %q, %v; want 1 (the refused write not applied)", kv.Value, err)
	}
	select {
	case <-leading: // campaigned again and won (the only candidate)
	case <-ctx.Done():
		t.Fatal("did not lead again")
	}
}
