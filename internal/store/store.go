// Package store owns ruche's state: the narrow interface every component
// uses (get, list, transactional put, watch from a revision, lease), the key
// layout, and the (de)serialisation of the records kept there.
//
// Two implementations: Etcd (embedded or external etcd, the real thing) and
// Memory (for unit tests; it runs inside a testing/synctest bubble). Both
// pass the same conformance test.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors.
var (
	ErrNotFound  = errors.New("store: key not found")
	ErrConflict  = errors.New("store: conflict")
	ErrCompacted = errors.New("store: revision compacted")
	ErrClosed    = errors.New("store: closed")
	// ErrNotLeader: a write made for an elected function (RunElected)
	// after it lost the election; nothing was written. Not a conflict to
	// retry: the function's context ends with it.
	ErrNotLeader = errors.New("store: not the leader any more")
)

// KV is one key and its value at a revision.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// LeaseID identifies a lease; keys put with a lease vanish when it expires.
type LeaseID int64

// NoLease is the zero lease: the key lives until deleted.
const NoLease LeaseID = 0

type opKind int

const (
	opPut opKind = iota
	opDelete
	opDeletePrefix
)

// Op is one write of a transaction.
type Op struct {
	kind  opKind
	key   string
	value []byte
	lease LeaseID
}

// Put writes value at key.
func Put(key string, value []byte) Op { return Op{kind: opPut, key: key, value: value} }

// PutWithLease writes value at key, bound to lease.
func PutWithLease(key string, value []byte, lease LeaseID) Op {
	return Op{kind: opPut, key: key, value: value, lease: lease}
}

// Delete removes key; deleting an absent key is not an error.
func Delete(key string) Op { return Op{kind: opDelete, key: key} }

// DeletePrefix removes every key under prefix.
func DeletePrefix(prefix string) Op { return Op{kind: opDeletePrefix, key: prefix} }

// Cmp is a condition of a transaction.
type Cmp struct {
	key    string
	modRev int64
	exists bool // the condition is "key exists" rather than a revision
}

// ModRevisionIs holds when key was last written at rev; rev 0 means "key is
// absent". It is the optimistic-concurrency check: read, change, write if
// unchanged.
func ModRevisionIs(key string, rev int64) Cmp { return Cmp{key: key, modRev: rev} }

// KeyExists holds when key is present, whatever its revision.
func KeyExists(key string) Cmp { return Cmp{key: key, exists: true} }

// EventType is what happened to a key.
type EventType int

const (
	EventPut EventType = iota
	EventDelete
)

// Event is one change seen by a watch. For deletes, KV.Value is empty.
type Event struct {
	Type EventType
	KV   KV
}

// WatchResponse is a batch of events at Revision. A response with Err set is
// the last one on its channel.
type WatchResponse struct {
	Events   []Event
	Revision int64
	Err      error
}

// Store is what components need of the state store.
type Store interface {
	// Get returns the value at key, or ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// List returns every key under prefix, sorted, and the store revision
	// the list was read at: watch from rev+1 to miss nothing.
	List(ctx context.Context, prefix string) (kvs []KV, rev int64, err error)
	// Txn applies ops atomically if every cmp holds, else returns
	// ErrConflict and changes nothing. It returns the revision written.
	// Under a leader's fence (the context RunElected hands to its
	// function) a lost election makes it ErrNotLeader.
	Txn(ctx context.Context, cmps []Cmp, ops ...Op) (rev int64, err error)
	// Watch streams changes under prefix from revision fromRev (0: from
	// now). The channel closes when ctx ends; a response with Err
	// (ErrCompacted, ErrClosed, ...) is sent before a close for any other
	// reason. Callers re-list and re-watch on error.
	Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse
	// Grant creates a lease that expires after ttl unless kept alive.
	Grant(ctx context.Context, ttl time.Duration) (LeaseID, error)
	// KeepAlive renews lease until ctx ends; it returns at once.
	KeepAlive(ctx context.Context, lease LeaseID) error
	// Revoke ends lease now, deleting its keys.
	Revoke(ctx context.Context, lease LeaseID) error
}
