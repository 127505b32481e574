package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Etcd is the Store on a real etcd: embedded (see Embedded) or external.
type Etcd struct {
	cli *clientv3.Client
	// electionTTL is the election session's lease in seconds (0:
	// ElectionTTL).
	electionTTL int
}

// NewEtcd wraps an etcd client.
func NewEtcd(cli *clientv3.Client) *Etcd { return &Etcd{cli: cli} }

// Client returns the underlying etcd client (for status and maintenance).
func (e *Etcd) Client() *clientv3.Client { return e.cli }

func (e *Etcd) Get(ctx context.Context, key string) (KV, error) {
	resp, err := e.cli.Get(ctx, key)
	if err != nil {
		return KV{}, fmt.Errorf("get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return KV{}, ErrNotFound
	}
	return fromEtcd(resp.Kvs[0]), nil
}

func (e *Etcd) List(ctx context.Context, prefix string) ([]KV, int64, error) {
	resp, err := e.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = fromEtcd(kv)
	}
	return out, resp.Header.Revision, nil
}

func (e *Etcd) Txn(ctx context.Context, cmps []Cmp, ops ...Op) (int64, error) {
	ecmps := make([]clientv3.Cmp, len(cmps))
	for i, c := range cmps {
		if c.exists {
			ecmps[i] = clientv3.Compare(clientv3.CreateRevision(c.key), ">", 0)
		} else {
			ecmps[i] = clientv3.Compare(clientv3.ModRevision(c.key), "=", c.modRev)
		}
	}
	eops := make([]clientv3.Op, len(ops))
	for i, op := range ops {
		switch op.kind {
		case opPut:
			var opts []clientv3.OpOption
			if op.lease != NoLease {
				opts = append(opts, clientv3.WithLease(clientv3.LeaseID(op.lease)))
			}
			eops[i] = clientv3.OpPut(op.key, string(op.value), opts...)
		case opDelete:
			eops[i] = clientv3.OpDelete(op.key)
		case opDeletePrefix:
			eops[i] = clientv3.OpDelete(op.key, clientv3.WithPrefix())
		}
	}
	f := fenceOf(ctx)
	var resp *clientv3.TxnResponse
	var err error
	if f == nil {
		resp, err = e.cli.Txn(ctx).If(ecmps...).Then(eops...).Commit()
	} else {
		// The fence outside, the caller's compares in a nested
		// transaction: which one failed tells ErrNotLeader from
		// ErrConflict, in one round trip.
		resp, err = e.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev)).
			Then(clientv3.OpTxn(ecmps, eops, nil)).Commit()
	}
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, fmt.Errorf("txn: %w", ErrNotFound)
		}
		if isNoSpace(err) {
			return 0, fullError(err)
		}
		return 0, fmt.Errorf("txn: %w", err)
	}
	if !resp.Succeeded {
		if f != nil {
			return 0, f.refused()
		}
		return 0, ErrConflict
	}
	if f != nil && !resp.Responses[0].GetResponseTxn().Succeeded {
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

func (e *Etcd) Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse {
	out := make(chan WatchResponse, 16)
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev))
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := e.cli.Watch(wctx, prefix, opts...)
	go func() {
		defer close(out)
		defer cancel()
		for resp := range wch {
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					err = ErrCompacted
				}
				select {
				case out <- WatchResponse{Err: err, Revision: resp.Header.Revision}:
				case <-ctx.Done():
				}
				return
			}
			wr := WatchResponse{Revision: resp.Header.Revision, Events: make([]Event, 0, len(resp.Events))}
			for _, ev := range resp.Events {
				t := EventPut
				if ev.Type == mvccpb.DELETE {
					t = EventDelete
				}
				wr.Events = append(wr.Events, Event{Type: t, KV: fromEtcd(ev.Kv)})
			}
			select {
			case out <- wr:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() == nil {
			select {
			case out <- WatchResponse{Err: ErrClosed}:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

func (e *Etcd) Grant(ctx context.Context, ttl time.Duration) (LeaseID, error) {
	secs := int64((ttl + time.Second - 1) / time.Second)
	resp, err := e.cli.Grant(ctx, secs)
	if err != nil {
		if isNoSpace(err) {
			return 0, fullError(err)
		}
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	return LeaseID(resp.ID), nil
}

func (e *Etcd) KeepAlive(ctx context.Context, id LeaseID) error {
	ch, err := e.cli.KeepAlive(ctx, clientv3.LeaseID(id))
	if err != nil {
		return fmt.Errorf("keep lease alive: %w", err)
	}
	go func() {
		for range ch { // drain: the client stops sending when ctx ends
		}
	}()
	return nil
}

func (e *Etcd) Revoke(ctx context.Context, id LeaseID) error {
	if _, err := e.cli.Revoke(ctx, clientv3.LeaseID(id)); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return ErrNotFound
		}
		return fmt.Errorf("revoke lease: %w", err)
	}
	return nil
}

// RunElected campaigns for leadership under name and runs fn while this
// process leads; fn's context ends when leadership is lost, and RunElected
// campaigns again. It returns when ctx ends.
func (e *Etcd) RunElected(ctx context.Context, name, id string, fn func(ctx context.Context)) error {
	for ctx.Err() == nil {
		if err := e.leadOnce(ctx, name, id, fn); err != nil && ctx.Err() == nil {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
	return nil
}

// ElectionTTL is the lease of a leader's election session, in seconds:
// when the leader dies or is cut off, another manager takes over after at
// most this long (plus etcd's election timeout when the etcd leader died
// too: its successor extends every lease by that much). 2 s is the
// shortest etcd grants with its default timing (1.5 election timeouts);
// the client renews every TTL/3 and, cut off, gives the session up when
// the TTL passes without an answer.
const ElectionTTL = 2

// electionTTLFor is the shortest session lease etcd grants with an
// election timeout of ms: 1.5 timeouts, in whole seconds (2 s for etcd's
// default 1000 ms, 1 s for 500 ms).
func electionTTLFor(ms uint) int {
	if ms == 0 {
		return ElectionTTL
	}
	return max(1, int((3*ms/2+999)/1000))
}

func (e *Etcd) leadOnce(ctx context.Context, name, id string, fn func(ctx context.Context)) error {
	ttl := e.electionTTL
	if ttl == 0 {
		ttl = ElectionTTL
	}
	sess, err := concurrency.NewSession(e.cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("election session: %w", err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, ElectionPrefix+name)
	if err := el.Campaign(ctx, id); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	// Campaign returns when the keys before ours are gone, even when ours
	// went too (the session's lease expired while it waited, as during an
	// etcd leader election longer than the TTL): make sure ours is first.
	first, err := e.cli.Get(ctx, ElectionPrefix+name+"/", clientv3.WithFirstCreate()...)
	if err != nil || len(first.Kvs) == 0 || string(first.Kvs[0].Key) != el.Key() {
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = el.Resign(rctx)
		rcancel()
		if err == nil {
			err = errors.New("another candidate leads")
		}
		return fmt.Errorf("campaign: not the leader after all: %w", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	lctx = withFence(lctx, el.Key(), el.Rev(), cancel)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(lctx)
	}()
	select {
	case <-sess.Done():
	case <-ctx.Done():
	case <-done:
	}
	cancel()
	<-done
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	_ = el.Resign(rctx)
	return nil
}

func fromEtcd(kv *mvccpb.KeyValue) KV {
	return KV{Key: string(kv.Key), Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}
}
