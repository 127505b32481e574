package store

import "context"

// A fence makes the writes of an elected function conditional on its
// still holding the election: RunElected puts one in the context it hands
// to fn, and Txn adds "the election key still has the create revision it
// had when we won" to the compares. A leader deposed while it still runs
// (its session lapsed on the store's clock, or its lease was revoked by
// the new etcd leader: leaderwatch.go) has its next write refused with
// ErrNotLeader instead of racing the new leader's.
type fence struct {
	key string
	rev int64
	// lost ends the elected function's context: a deposed leader stops
	// at its first refused write rather than waiting for its session to
	// end.
	lost context.CancelFunc
}

type fenceCtxKey struct{}

// withFence returns ctx carrying a fence on key at create revision rev;
// lost is called when a write finds the fence gone.
func withFence(ctx context.Context, key string, rev int64, lost context.CancelFunc) context.Context {
	return context.WithValue(ctx, fenceCtxKey{}, &fence{key: key, rev: rev, lost: lost})
}

// fenceOf is ctx's fence, nil when it has none.
func fenceOf(ctx context.Context) *fence {
	f, _ := ctx.Value(fenceCtxKey{}).(*fence)
	return f
}

// refused reports a write the fence stopped: ErrNotLeader, after ending
// the elected function's context.
func (f *fence) refused() error {
	if f.lost != nil {
		f.lost()
	}
	return ErrNotLeader
}
