package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/testports"
)

// conformance runs the contract of Store against an implementation.
func conformance(t *testing.T, s Store) {
	ctx := context.Background()
	put := func(key, val string) int64 {
		t.Helper()
		rev, err := s.Txn(ctx, nil, Put(key, []byte(val)))
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return rev
	}

	t.Run("get missing", func(t *testing.T) {
		if _, err := s.Get(ctx, "/t/missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})
	t.Run("put get list", func(t *testing.T) {
		r1 := put("/t/a/1", "one")
		r2 := put("/t/a/2", "two")
		put("/t/b/1", "other")
		if r2 <= r1 {
			t.Fatalf("revisions not increasing: %d then %d", r1, r2)
		}
		kv, err := s.Get(ctx, "/t/a/1")
		if err != nil || string(kv.Value) != "one" || kv.ModRevision != r1 {
			t.Fatalf("got %+v %v, want one at %d", kv, err, r1)
		}
		kvs, rev, err := s.List(ctx, "/t/a/")
		if err != nil || len(kvs) != 2 || kvs[0].Key != "/t/a/1" || kvs[1].Key != "/t/a/2" || rev < r2 {
			t.Fatalf("list: got %v rev %d err %v", kvs, rev, err)
		}
	})
	t.Run("compare", func(t *testing.T) {
		r := put("/t/c", "v1")
		if _, err := s.Txn(ctx, []Cmp{ModRevisionIs("/t/c", r-1)}, Put("/t/c", []byte("bad"))); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale compare: got %v, want ErrConflict", err)
		}
		if _, err := s.Txn(ctx, []Cmp{ModRevisionIs("/t/c", r)}, Put("/t/c", []byte("v2"))); err != nil {
			t.Fatalf("fresh compare: %v", err)
		}
		if _, err := s.Txn(ctx, []Cmp{ModRevisionIs("/t/new", 0)}, Put("/t/new", []byte("x"))); err != nil {
			t.Fatalf("absent compare: %v", err)
		}
		if _, err := s.Txn(ctx, []Cmp{KeyExists("/t/nope")}, Put("/t/x", []byte("x"))); !errors.Is(err, ErrConflict) {
			t.Fatalf("exists on missing key: got %v, want ErrConflict", err)
		}
		if _, err := s.Get(ctx, "/t/x"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("failed txn wrote: %v", err)
		}
		if _, err := s.Txn(ctx, []Cmp{KeyExists("/t/c")}, Put("/t/x", []byte("x"))); err != nil {
			t.Fatalf("exists on present key: %v", err)
		}
	})
	t.Run("watch from revision", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		r := put("/t/w/1", "a")
		put("/t/other", "z")
		s.Txn(ctx, nil, Put("/t/w/2", []byte("b")), Delete("/t/w/1"))
		ch := s.Watch(wctx, "/t/w/", r)
		var got []string
		for len(got) < 3 {
			select {
			case resp := <-ch:
				if resp.Err != nil {
					t.Fatal(resp.Err)
				}
				for _, ev := range resp.Events {
					got = append(got, fmt.Sprintf("%d:%s=%s", ev.Type, ev.KV.Key, ev.KV.Value))
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("watch stalled after %v", got)
			}
		}
		want := []string{"0:/t/w/1=a", "0:/t/w/2=b", "1:/t/w/1="}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("delete prefix", func(t *testing.T) {
		put("/t/d/1", "x")
		put("/t/d/2", "y")
		if _, err := s.Txn(ctx, nil, DeletePrefix("/t/d/")); err != nil {
			t.Fatal(err)
		}
		if kvs, _, _ := s.List(ctx, "/t/d/"); len(kvs) != 0 {
			t.Fatalf("left %v", kvs)
		}
	})
	t.Run("fence", func(t *testing.T) {
		rev := put("/t/fence/leader", "me")
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		fctx := withFence(lctx, "/t/fence/leader", rev, cancel)
		if _, err := s.Txn(fctx, nil, Put("/t/fence/w", []byte("1"))); err != nil {
			t.Fatalf("write while leading: %v", err)
		}
		if _, err := s.Txn(fctx, []Cmp{ModRevisionIs("/t/fence/w", 1)}, Put("/t/fence/w", []byte("2"))); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale compare while leading: %v, want ErrConflict", err)
		}
		// The leader's key goes (its session lost) and comes back as
		// another candidate's: same key, new create revision.
		if _, err := s.Txn(ctx, nil, Delete("/t/fence/leader")); err != nil {
			t.Fatal(err)
		}
		put("/t/fence/leader", "other")
		if _, err := s.Txn(fctx, nil, Put("/t/fence/w", []byte("3"))); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("write after losing the election: %v, want ErrNotLeader", err)
		}
		if lctx.Err() == nil {
			t.Error("the elected function's context did not end at the refused write")
		}
		if kv, err := s.Get(ctx, "/t/fence/w"); err != nil || string(kv.Value) != "1" {
			t.Errorf("after the refused write: %q, %v; want 1", kv.Value, err)
		}
	})
	t.Run("lease revoke", func(t *testing.T) {
		id, err := s.Grant(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Txn(ctx, nil, PutWithLease("/t/l", []byte("x"), id)); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "/t/l"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("leased key after revoke: %v", err)
		}
	})
}

func TestMemoryConformance(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	conformance(t, m)
}

func TestEtcdConformance(t *testing.T) {
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), ClientAddr: testports.Free(t), PeerAddr: testports.Free(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	conformance(t, e)
}
