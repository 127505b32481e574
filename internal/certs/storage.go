package certs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/ruche-platform/ruche/internal/store"
)

// StoragePrefix is where certmagic keeps its assets in the cluster store:
// ACME account, certificates, keys, challenge tokens and locks.
const StoragePrefix = store.Root + "certmagic/"

// lockTTL bounds how long a lock outlives a node that died holding it; a
// live holder keeps the lease alive.
const lockTTL = 15 * time.Second

// ErrNotLocked is returned by Unlock for a lock this process does not hold.
var ErrNotLocked = errors.New("certs: lock not held")

// Storage is a certmagic.Storage on the cluster store, so that every node
// shares one ACME account, one copy of each certificate, and the challenge
// tokens (any node answers a validation). Values are wrapped in a small
// envelope with their modification time; private keys (".key" files) are
// sealed when a sealer is given. Locks are keys bound to a lease and
// written with a create-only compare, kept alive while held, so a node that
// dies releases its locks when the lease runs out.
type Storage struct {
	st     store.Store
	prefix string
	sealer sealer
	opener interface{ Open([]byte) ([]byte, error) }

	mu    sync.Mutex
	locks map[string]heldLock
}

type heldLock struct {
	lease store.LeaseID
	stop  context.CancelFunc // ends the keep-alive
}

// envelope is the stored form of a value.
type envelope struct {
	Value    []byte    `json:"value"`
	Sealed   bool      `json:"sealed,omitempty"`
	Modified time.Time `json:"modified"`
}

// NewStorage returns a certmagic.Storage under prefix (StoragePrefix in
// production). box, if not nil, seals private keys; it must also open them.
func NewStorage(st store.Store, prefix string, box interface {
	Open([]byte) ([]byte, error)
	Seal([]byte) ([]byte, error)
}) *Storage {
	s := &Storage{st: st, prefix: prefix, locks: map[string]heldLock{}}
	if box != nil {
		s.sealer, s.opener = box, box
	}
	return s
}

var (
	_ certmagic.Storage   = (*Storage)(nil)
	_ certmagic.TryLocker = (*Storage)(nil)
)

func (s *Storage) key(k string) string { return s.prefix + strings.Trim(k, "/") }

// dir is the store prefix of the keys "inside" k.
func (s *Storage) dir(k string) string {
	k = strings.Trim(k, "/")
	if k == "" {
		return s.prefix
	}
	return s.prefix + k + "/"
}

func secretKey(k string) bool { return strings.HasSuffix(k, ".key") }

// Store puts value at key.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	env := envelope{Value: value, Modified: time.Now().UTC()}
	if s.sealer != nil && secretKey(key) {
		sealed, err := s.sealer.Seal(value)
		if err != nil {
			return fmt.Errorf("seal %s: %w", key, err)
		}
		env.Value, env.Sealed = sealed, true
	}
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	if _, err := s.st.Txn(ctx, nil, store.Put(s.key(key), b)); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

func (s *Storage) load(ctx context.Context, key string) (envelope, error) {
	kv, err := s.st.Get(ctx, s.key(key))
	if errors.Is(err, store.ErrNotFound) {
		return envelope{}, fs.ErrNotExist
	}
	if err != nil {
		return envelope{}, fmt.Errorf("load %s: %w", key, err)
	}
	var env envelope
	if err := json.Unmarshal(kv.Value, &env); err != nil {
		return envelope{}, fmt.Errorf("load %s: decode: %w", key, err)
	}
	return env, nil
}

// Load returns the value at key, or fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	env, err := s.load(ctx, key)
	if err != nil {
		return nil, err
	}
	if env.Sealed {
		if s.opener == nil {
			return nil, fmt.Errorf("load %s: sealed and nothing to open it", key)
		}
		plain, err := s.opener.Open(env.Value)
		if err != nil {
			return nil, fmt.Errorf("load %s: open: %w", key, err)
		}
		return plain, nil
	}
	return env.Value, nil
}

// Delete removes key and, if it is a directory, everything in it.
func (s *Storage) Delete(ctx context.Context, key string) error {
	if _, err := s.st.Txn(ctx, nil, store.Delete(s.key(key)), store.DeletePrefix(s.dir(key))); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Exists tells whether key is a file or a non-empty directory.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	if _, err := s.st.Get(ctx, s.key(key)); err == nil {
		return true
	}
	kvs, _, err := s.st.List(ctx, s.dir(key))
	return err == nil && len(kvs) > 0
}

// List returns the keys in directory dir, or every key below it when
// recursive (directories included, as certmagic's FileStorage does).
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	kvs, _, err := s.st.List(ctx, s.dir(dir))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	if len(kvs) == 0 {
		return nil, fs.ErrNotExist
	}
	base := strings.Trim(dir, "/")
	seen := map[string]bool{}
	var out []string
	add := func(rel string) {
		k := path.Join(base, rel)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, kv := range kvs {
		rel := strings.TrimPrefix(kv.Key, s.dir(dir))
		if !recursive {
			first, _, _ := strings.Cut(rel, "/")
			add(first)
			continue
		}
		parts := strings.Split(rel, "/")
		for i := range parts {
			add(strings.Join(parts[:i+1], "/"))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Stat describes key: a file, a directory, or fs.ErrNotExist.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	env, err := s.load(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: env.Modified, Size: int64(len(env.Value)), IsTerminal: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return certmagic.KeyInfo{}, err
	}
	kvs, _, lerr := s.st.List(ctx, s.dir(key))
	if lerr != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, lerr)
	}
	if len(kvs) == 0 {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

func (s *Storage) lockKey(name string) string { return s.prefix + "locks/" + name }

// TryLock takes the named lock if it is free.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	lease, err := s.st.Grant(ctx, lockTTL)
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", name, err)
	}
	k := s.lockKey(name)
	_, err = s.st.Txn(ctx, []store.Cmp{store.ModRevisionIs(k, 0)}, store.PutWithLease(k, []byte(time.Now().UTC().Format(time.RFC3339)), lease))
	if err != nil {
		_ = s.st.Revoke(context.WithoutCancel(ctx), lease)
		if errors.Is(err, store.ErrConflict) {
			return false, nil
		}
		return false, fmt.Errorf("lock %s: %w", name, err)
	}
	// The lock outlives this call: its keep-alive runs until Unlock.
	kctx, stop := context.WithCancel(context.Background())
	if err := s.st.KeepAlive(kctx, lease); err != nil {
		stop()
		_ = s.st.Revoke(context.WithoutCancel(ctx), lease)
		return false, fmt.Errorf("lock %s: %w", name, err)
	}
	s.mu.Lock()
	s.locks[name] = heldLock{lease: lease, stop: stop}
	s.mu.Unlock()
	return true, nil
}

// Lock takes the named lock, waiting for its holder to release it (or to
// die and its lease to run out) until ctx ends.
func (s *Storage) Lock(ctx context.Context, name string) error {
	k := s.lockKey(name)
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		kv, err := s.st.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue // released in between
		}
		if err != nil {
			return fmt.Errorf("lock %s: %w", name, err)
		}
		if err := s.waitGone(ctx, k, kv.ModRevision); err != nil {
			return fmt.Errorf("lock %s: %w", name, err)
		}
	}
}

// waitGone returns once key, seen at rev, has changed or gone, or after
// lockTTL (to look again should the watch miss it).
func (s *Storage) waitGone(ctx context.Context, key string, rev int64) error {
	wctx, cancel := context.WithTimeout(ctx, lockTTL)
	defer cancel()
	for resp := range s.st.Watch(wctx, key, rev+1) {
		if resp.Err != nil {
			return nil // look again
		}
		for _, ev := range resp.Events {
			if ev.KV.Key == key {
				return nil
			}
		}
	}
	return ctx.Err()
}

// Unlock releases a lock this process holds.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h, ok := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("unlock %s: %w", name, ErrNotLocked)
	}
	h.stop()
	if err := s.st.Revoke(ctx, h.lease); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	return nil
}

// Close releases every lock still held (on shutdown).
func (s *Storage) Close(ctx context.Context) {
	s.mu.Lock()
	names := make([]string, 0, len(s.locks))
	for n := range s.locks {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		_ = s.Unlock(ctx, n)
	}
}

// String names the storage in certmagic's logs.
func (s *Storage) String() string { return "ruche store " + s.prefix }
