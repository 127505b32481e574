package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Fast takeover when the etcd leader dies with the ruche leader.
//
// A dead manager's election sessions end when their leases expire: the
// TTL (2 s at etcd's default timing), plus one election timeout when the
// etcd leader died too, since a new etcd leader first extends every lease
// by that much. When this member becomes etcd leader after another member
// P led, P was cut off from a quorum or died (or handed leadership over on
// shutdown): the member revokes at once the leases of the election keys
// whose value names P's manager (member name = node ID = election value),
// and the candidates waiting behind them win within milliseconds. If P is
// in fact alive, its controllers stop at their next write (fence.go) and it
// campaigns again; the price of a wrong guess is one change of ruche leader.

// electionKey is an election candidate's key: its value (a manager's
// name) and its session lease.
type electionKey struct {
	key, value string
	lease      LeaseID
}

// staleSessions decides which leases to revoke: those of prevName's
// election keys, when this member (self) has just become the etcd leader
// (cur) after another member (prev) led. Nothing otherwise.
func staleSessions(prev, cur, self uint64, prevName string, keys []electionKey) []LeaseID {
	if cur != self || prev == 0 || prev == self || prevName == "" {
		return nil
	}
	var out []LeaseID
	for _, k := range keys {
		if k.value == prevName && k.lease != NoLease && !slices.Contains(out, k.lease) {
			out = append(out, k.lease)
		}
	}
	return out
}

// watchLeader follows this member's view of the raft leader until ctx
// ends, revoking the election sessions of a previous leader's manager when
// this member takes over.
func (m *Embedded) watchLeader(ctx context.Context, log *slog.Logger) {
	srv := m.e.Server
	self := uint64(srv.MemberID())
	var last uint64 // the last non-zero leader seen, this member included
	for {
		changed := srv.LeaderChangedNotify()
		cur := uint64(srv.Leader())
		if cur == self && last != 0 && last != self {
			name := ""
			if mem := srv.Cluster().Member(types.ID(last)); mem != nil {
				name = mem.Name
			}
			if n, err := m.revokeSessionsOf(ctx, last, self, name); err != nil {
				log.Warn("etcd leader changed; its election sessions not revoked (they expire)", "from", name, "err", err)
			} else if n > 0 {
				log.Info(fmt.Sprintf("etcd leader changed from %s; revoked its election sessions", name), "sessions", n)
			}
		}
		if cur != 0 {
			last = cur
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// revokeSessionsOf revokes the election sessions of member prev's manager
// (name). A new leader may refuse requests for a moment: it retries for a
// few seconds while it still leads.
func (m *Embedded) revokeSessionsOf(ctx context.Context, prev, self uint64, name string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil && uint64(m.e.Server.Leader()) == self {
		var n int
		if n, err = m.revokeOnce(ctx, prev, self, name); err == nil {
			return n, nil
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return 0, err
}

func (m *Embedded) revokeOnce(ctx context.Context, prev, self uint64, name string) (int, error) {
	resp, err := m.cli.Get(ctx, ElectionPrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list elections: %w", err)
	}
	keys := make([]electionKey, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		keys[i] = electionKey{key: string(kv.Key), value: string(kv.Value), lease: LeaseID(kv.Lease)}
	}
	leases := staleSessions(prev, self, self, name, keys)
	for _, l := range leases {
		if err := m.Revoke(ctx, l); err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
	}
	return len(leases), nil
}
