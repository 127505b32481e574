package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
	"github.com/ruche-platform/ruche/internal/testports"
)

func testBox(t *testing.T) *secret.Box {
	t.Helper()
	b, err := secret.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storageConformance is the contract certmagic expects of a Storage, run
// against one store implementation. a and b are two nodes' Storages on the
// same store.
func storageConformance(t *testing.T, st store.Store) {
	ctx := context.Background()
	a := NewStorage(st, "/t/cm/", testBox(t))
	b := NewStorage(st, "/t/cm/", testBox(t))

	put := func(k, v string) {
		t.Helper()
		if err := a.Store(ctx, k, []byte(v)); err != nil {
			t.Fatalf("store %s: %v", k, err)
		}
	}

	t.Run("load missing", func(t *testing.T) {
		if _, err := a.Load(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want fs.ErrNotExist", err)
		}
		if _, err := a.Stat(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stat: got %v, want fs.ErrNotExist", err)
		}
		if _, err := a.List(ctx, "nope", true); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("list: got %v, want fs.ErrNotExist", err)
		}
		if a.Exists(ctx, "nope") {
			t.Fatal("missing key exists")
		}
	})

	t.Run("store load across nodes", func(t *testing.T) {
		put("certificates/ca/app.example.org/app.example.org.crt", "CERT")
		got, err := b.Load(ctx, "certificates/ca/app.example.org/app.example.org.crt")
		if err != nil || string(got) != "CERT" {
			t.Fatalf("got %q %v, want CERT", got, err)
		}
		put("certificates/ca/app.example.org/app.example.org.crt", "CERT2")
		if got, _ := b.Load(ctx, "certificates/ca/app.example.org/app.example.org.crt"); string(got) != "CERT2" {
			t.Fatalf("overwrite: got %q, want CERT2", got)
		}
	})

	t.Run("private keys are sealed", func(t *testing.T) {
		const secretPEM = "-----BEGIN EC PRIVATE KEY-----secret"
		put("certificates/ca/app.example.org/app.example.org.key", secretPEM)
		kv, err := st.Get(ctx, "/t/cm/certificates/ca/app.example.org/app.example.org.key")
		if err != nil {
			t.Fatal(err)
		}
		var env envelope
		if err := json.Unmarshal(kv.Value, &env); err != nil {
			t.Fatal(err)
		}
		if !env.Sealed || bytes.Contains(env.Value, []byte("secret")) {
			t.Fatalf("key stored in clear: %s", kv.Value)
		}
		if got, err := b.Load(ctx, "certificates/ca/app.example.org/app.example.org.key"); err != nil || string(got) != secretPEM {
			t.Fatalf("got %q %v, want the key back", got, err)
		}
		clear := NewStorage(st, "/t/cm/", nil)
		if _, err := clear.Load(ctx, "certificates/ca/app.example.org/app.example.org.key"); err == nil {
			t.Fatal("a sealed key loaded without a box")
		}
	})

	t.Run("list stat exists", func(t *testing.T) {
		put("dir/a/1.json", "1")
		put("dir/a/2.json", "2")
		put("dir/b/c/3.json", "3")
		put("dir/ab.json", "x") // "dir/a" is not a prefix of "dir/ab.json"
		got, err := a.List(ctx, "dir", false)
		want := []string{"dir/a", "dir/ab.json", "dir/b"}
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("list: got %v %v, want %v", got, err, want)
		}
		got, _ = a.List(ctx, "dir/a", false)
		if want := []string{"dir/a/1.json", "dir/a/2.json"}; !slices.Equal(got, want) {
			t.Fatalf("list dir/a: got %v, want %v", got, want)
		}
		got, _ = a.List(ctx, "dir", true)
		want = []string{"dir/a", "dir/a/1.json", "dir/a/2.json", "dir/ab.json", "dir/b", "dir/b/c", "dir/b/c/3.json"}
		if !slices.Equal(got, want) {
			t.Fatalf("recursive: got %v, want %v", got, want)
		}
		fi, err := a.Stat(ctx, "dir/a/1.json")
		if err != nil || !fi.IsTerminal || fi.Size != 1 || fi.Key != "dir/a/1.json" || time.Since(fi.Modified) > time.Hour {
			t.Fatalf("stat file: got %+v %v", fi, err)
		}
		fi, err = a.Stat(ctx, "dir/b")
		if err != nil || fi.IsTerminal {
			t.Fatalf("stat dir: got %+v %v", fi, err)
		}
		for _, k := range []string{"dir", "dir/a", "dir/a/1.json"} {
			if !b.Exists(ctx, k) {
				t.Errorf("%s does not exist", k)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := a.Delete(ctx, "dir/a/1.json"); err != nil {
			t.Fatal(err)
		}
		if a.Exists(ctx, "dir/a/1.json") {
			t.Fatal("deleted file exists")
		}
		if err := a.Delete(ctx, "dir"); err != nil {
			t.Fatal(err)
		}
		if a.Exists(ctx, "dir") || a.Exists(ctx, "dir/b/c/3.json") {
			t.Fatal("deleted directory exists")
		}
		if err := a.Delete(ctx, "dir"); err != nil {
			t.Fatalf("deleting a missing key: %v", err)
		}
	})

	t.Run("locks", func(t *testing.T) {
		if err := a.Lock(ctx, "issue_cert_app"); err != nil {
			t.Fatal(err)
		}
		if ok, err := b.TryLock(ctx, "issue_cert_app"); ok || err != nil {
			t.Fatalf("another node took a held lock: %v %v", ok, err)
		}
		if ok, err := b.TryLock(ctx, "issue_cert_other"); !ok || err != nil {
			t.Fatalf("another lock: %v %v", ok, err)
		}
		got := make(chan error, 1)
		go func() { got <- b.Lock(ctx, "issue_cert_app") }()
		select {
		case err := <-got:
			t.Fatalf("Lock returned (%v) while the lock is held", err)
		case <-time.After(200 * time.Millisecond):
		}
		if err := a.Unlock(ctx, "issue_cert_app"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Lock still waiting after the holder released it")
		}
		if err := a.Unlock(ctx, "issue_cert_app"); !errors.Is(err, ErrNotLocked) {
			t.Fatalf("unlock of a lock held elsewhere: got %v, want ErrNotLocked", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		go func() { got <- a.Lock(cctx, "issue_cert_app") }()
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Lock: got %v, want context.Canceled", err)
		}
		b.Close(ctx)
		if ok, _ := a.TryLock(ctx, "issue_cert_other"); !ok {
			t.Fatal("Close did not release the locks")
		}
		a.Close(ctx)
	})
}

func TestStorageMemory(t *testing.T) {
	m := store.NewMemory()
	defer m.Close()
	storageConformance(t, m)
}

func TestStorageEtcd(t *testing.T) {
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir(), ClientAddr: testports.Free(t), PeerAddr: testports.Free(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	storageConformance(t, e)
}

// A node that dies holding a lock releases it when its lease runs out.
func TestStorageLockOfDeadNodeExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := store.NewMemory()
		defer m.Close()
		a := NewStorage(m, "/t/cm/", nil)
		b := NewStorage(m, "/t/cm/", nil)
		if err := a.Lock(ctx, "l"); err != nil {
			t.Fatal(err)
		}
		// a dies: its keep-alive stops, nobody revokes the lease.
		a.mu.Lock()
		a.locks["l"].stop()
		a.mu.Unlock()
		start := time.Now()
		if err := b.Lock(ctx, "l"); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < lockTTL-lockTTL/3 || waited > 2*lockTTL {
			t.Fatalf("got the lock after %v, want about the lease TTL %v", waited, lockTTL)
		}
		// A live holder keeps its lock past the TTL.
		synctest.Wait()
		time.Sleep(3 * lockTTL)
		if ok, _ := a.TryLock(ctx, "l"); ok {
			t.Fatal("a lock kept alive was taken")
		}
		b.Close(ctx)
	})
}
