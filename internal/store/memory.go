package store

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"
)

// Memory is an in-memory Store for unit tests. It keeps every event since it
// was made, so watches from any revision work; it uses only the time package,
// so it runs inside a testing/synctest bubble.
type Memory struct {
	mu      sync.Mutex
	rev     int64
	kvs     map[string]KV
	leaseOf map[string]LeaseID
	log     []Event // event i happened at revision revOf[i]
	revOf   []int64
	changed chan struct{} // closed and replaced on every write
	leases  map[LeaseID]*memLease
	nextID  LeaseID
	closed  bool
}

type memLease struct {
	ttl   time.Duration
	timer *time.Timer
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		kvs:     make(map[string]KV),
		leaseOf: make(map[string]LeaseID),
		changed: make(chan struct{}),
		leases:  make(map[LeaseID]*memLease),
	}
}

// Close ends every watch with ErrClosed and stops lease timers.
func (m *Memory) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	for _, l := range m.leases {
		l.timer.Stop()
	}
	close(m.changed)
}

func (m *Memory) Get(ctx context.Context, key string) (KV, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return KV{}, ErrClosed
	}
	kv, ok := m.kvs[key]
	if !ok {
		return KV{}, ErrNotFound
	}
	return cloneKV(kv), nil
}

func (m *Memory) List(ctx context.Context, prefix string) ([]KV, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, 0, ErrClosed
	}
	var out []KV
	for k, kv := range m.kvs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, cloneKV(kv))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, m.rev, nil
}

func (m *Memory) Txn(ctx context.Context, cmps []Cmp, ops ...Op) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	if f := fenceOf(ctx); f != nil && m.kvs[f.key].CreateRevision != f.rev {
		return 0, f.refused()
	}
	for _, c := range cmps {
		rev := m.kvs[c.key].ModRevision
		if (c.exists && rev == 0) || (!c.exists && rev != c.modRev) {
			return 0, ErrConflict
		}
	}
	for _, op := range ops {
		if op.kind == opPut && op.lease != NoLease {
			if _, ok := m.leases[op.lease]; !ok {
				return 0, ErrNotFound
			}
		}
	}
	m.apply(ops)
	return m.rev, nil
}

// apply writes ops at a new revision. m.mu is held.
func (m *Memory) apply(ops []Op) {
	m.rev++
	before := len(m.log)
	for _, op := range ops {
		switch op.kind {
		case opPut:
			kv := m.kvs[op.key]
			if kv.CreateRevision == 0 {
				kv.CreateRevision = m.rev
			}
			kv.Key, kv.ModRevision = op.key, m.rev
			kv.Value = append([]byte(nil), op.value...)
			m.kvs[op.key] = kv
			if op.lease != NoLease {
				m.leaseOf[op.key] = op.lease
			} else {
				delete(m.leaseOf, op.key)
			}
			m.record(Event{Type: EventPut, KV: kv})
		case opDelete:
			m.del(op.key)
		case opDeletePrefix:
			for k := range m.kvs {
				if strings.HasPrefix(k, op.key) {
					m.del(k)
				}
			}
		}
	}
	if len(m.log) == before {
		m.rev-- // nothing changed: etcd does not bump the revision either
		return
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Memory) del(key string) {
	if _, ok := m.kvs[key]; !ok {
		return
	}
	delete(m.kvs, key)
	delete(m.leaseOf, key)
	m.record(Event{Type: EventDelete, KV: KV{Key: key, ModRevision: m.rev}})
}

func (m *Memory) record(ev Event) {
	m.log = append(m.log, ev)
	m.revOf = append(m.revOf, m.rev)
}

func (m *Memory) Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse {
	ch := make(chan WatchResponse, 16)
	m.mu.Lock()
	if fromRev <= 0 {
		fromRev = m.rev + 1
	}
	m.mu.Unlock()
	go func() {
		defer close(ch)
		next := fromRev
		for {
			m.mu.Lock()
			closed := m.closed
			i := sort.Search(len(m.revOf), func(i int) bool { return m.revOf[i] >= next })
			var resp WatchResponse
			for ; i < len(m.log); i++ {
				ev := m.log[i]
				if strings.HasPrefix(ev.KV.Key, prefix) {
					ev.KV = cloneKV(ev.KV)
					resp.Events = append(resp.Events, ev)
				}
			}
			resp.Revision = m.rev
			next = m.rev + 1
			wait := m.changed
			m.mu.Unlock()
			if len(resp.Events) > 0 {
				select {
				case ch <- resp:
				case <-ctx.Done():
					return
				}
			}
			if closed {
				select {
				case ch <- WatchResponse{Err: ErrClosed, Revision: resp.Revision}:
				case <-ctx.Done():
				}
				return
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func (m *Memory) Grant(ctx context.Context, ttl time.Duration) (LeaseID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	m.nextID++
	id := m.nextID
	m.leases[id] = &memLease{ttl: ttl, timer: time.AfterFunc(ttl, func() { m.expire(id) })}
	return id, nil
}

func (m *Memory) expire(id LeaseID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if _, ok := m.leases[id]; !ok {
		return
	}
	delete(m.leases, id)
	var ops []Op
	for k, l := range m.leaseOf {
		if l == id {
			ops = append(ops, Delete(k))
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].key < ops[j].key })
	m.apply(ops)
}

func (m *Memory) KeepAlive(ctx context.Context, id LeaseID) error {
	m.mu.Lock()
	l, ok := m.leases[id]
	m.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	go func() {
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.mu.Lock()
				if cur, ok := m.leases[id]; ok && !m.closed {
					cur.timer.Reset(cur.ttl)
					m.mu.Unlock()
					continue
				}
				m.mu.Unlock()
				return
			}
		}
	}()
	return nil
}

func (m *Memory) Revoke(ctx context.Context, id LeaseID) error {
	m.mu.Lock()
	l, ok := m.leases[id]
	if ok {
		l.timer.Stop()
	}
	m.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	m.expire(id)
	return nil
}

func cloneKV(kv KV) KV {
	kv.Value = append([]byte(nil), kv.Value...)
	return kv
}
