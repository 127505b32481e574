package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrNoMember: no etcd member has that name.
var ErrNoMember = errors.New("no such store member")

// Member is one etcd member of the managers' store.
type Member struct {
	ID       uint64
	Name     string // the manager's name; empty until a new member started
	PeerURLs []string
	Learner  bool
}

// ManagerRecord is what a manager publishes of itself under
// /ruche/managers/<name>, on a lease it keeps alive: present means alive.
type ManagerRecord struct {
	Name   string `json:"name"`
	APIURL string `json:"api_url"`
	// NodeAPIAddr is where the manager serves the node API (other
	// managers drain its proxy and read its replicas' logs there); empty:
	// none (a single node).
	NodeAPIAddr string    `json:"node_api_addr,omitempty"`
	PeerURL     string    `json:"peer_url,omitempty"`
	MemberID    uint64    `json:"member_id,omitempty"`
	DBSize      int64     `json:"db_size,omitempty"`
	Updated     time.Time `json:"updated"`
}

// Members lists the etcd members.
func (e *Etcd) Members(ctx context.Context) ([]Member, error) {
	resp, err := e.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list store members: %w", err)
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AddMember adds a member named name at peerURL as a learner and returns
// the initial-cluster string the new member starts with (its state
// "existing"). A learner receives the log but does not vote: the quorum is
// the same until the new member, started and caught up, promotes itself
// (Embedded.Promote). A voting member added at once would count in the
// quorum before it runs, leaving a two-member cluster without one until
// it starts.
func (e *Etcd) AddMember(ctx context.Context, name, peerURL string) (string, error) {
	resp, err := e.cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return "", fmt.Errorf("add store member %s: %w", name, err)
	}
	var parts []string
	for _, m := range resp.Members {
		n := m.Name
		if m.ID == resp.Member.ID {
			n = name
		}
		if n == "" {
			continue // another member added but not started yet
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ","), nil
}

// RemoveMember removes the member named name. A member added that never
// started has no name yet: name is then one of its peer URLs (a joining
// manager that died before its member started would otherwise stay a
// learner nobody can remove, and block every later join).
func (e *Etcd) RemoveMember(ctx context.Context, name string) error {
	ms, err := e.Members(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Name == name || (m.Name == "" && slices.Contains(m.PeerURLs, name)) {
			if _, err := e.cli.MemberRemove(ctx, m.ID); err != nil {
				return fmt.Errorf("remove store member %s: %w", name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrNoMember, name)
}

// RemoveMember removes the member named name (Etcd.RemoveMember). A member
// removing itself stops as soon as it has applied the removal, at times
// before it answers ("etcdserver: server stopped"): that removal is done,
// not an error, when this member knows itself removed.
func (m *Embedded) RemoveMember(ctx context.Context, name string) error {
	err := m.Etcd.RemoveMember(ctx, name)
	if err != nil && name == m.e.Config().Name && m.e.Server.IsIDRemoved(m.MemberID()) {
		return nil
	}
	return err
}

// SetPeerURL makes member id advertise peerURL (a single manager that
// first ran on loopback and now has an advertise address).
func (e *Etcd) SetPeerURL(ctx context.Context, id uint64, peerURL string) error {
	if _, err := e.cli.MemberUpdate(ctx, id, []string{peerURL}); err != nil {
		return fmt.Errorf("update store member peer URL: %w", err)
	}
	return nil
}

// Leader is the member ID of the etcd leader as the local member sees it
// (0: none).
func (e *Etcd) Leader(ctx context.Context) uint64 {
	eps := e.endpoints()
	st, err := e.cli.Status(ctx, eps[0])
	if err != nil {
		return 0
	}
	return st.Leader
}

// ElectionLeader is the value (a manager's name) of the current holder of
// the election name, "" when nobody leads.
func (e *Etcd) ElectionLeader(ctx context.Context, name string) (string, error) {
	resp, err := e.cli.Get(ctx, ElectionPrefix+name+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("election leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// IsLearner reports whether this member is a learner not yet promoted.
func (m *Embedded) IsLearner() bool { return m.e.Server.IsLearner() }

// Promote makes this member, a learner, a voting member. The leader
// refuses until the learner has caught up with its log: Promote retries,
// every 200 ms up to every 2 s, until it succeeds or ctx ends. A member
// that is already voting returns at once.
func (m *Embedded) Promote(ctx context.Context) error {
	wait := 200 * time.Millisecond
	for m.IsLearner() {
		_, err := m.cli.MemberPromote(ctx, m.MemberID())
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) {
			return nil
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("promote the store member (a learner): %w (last: %w)", ctx.Err(), err)
		}
		wait = min(2*wait, 2*time.Second)
	}
	return nil
}

// UnstartedLearnerTimeout is how long a learner may stay without a name
// (its member never started) before ReapUnstartedLearners removes it. A
// member that starts publishes its name within seconds, before catching
// up; ten minutes without one means the joining manager died.
const UnstartedLearnerTimeout = 10 * time.Minute

// ReapUnstartedLearners removes, until ctx ends, every learner whose
// member has had no name (never started) for longer than after, checking
// every after/10: a manager that died while joining would otherwise block
// every later join. Voting members and started learners are never
// touched. removed, if not nil, is called with the peer URL of each
// member removed. Run it on one manager at a time (the elected one).
func (e *Etcd) ReapUnstartedLearners(ctx context.Context, after time.Duration, removed func(peerURL string)) {
	seen := map[uint64]time.Time{} // unstarted learners, when first seen
	t := time.NewTicker(max(after/10, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ms, err := e.Members(ctx)
		if err != nil {
			continue
		}
		now := time.Now()
		still := map[uint64]time.Time{}
		for _, m := range ms {
			if !m.Learner || m.Name != "" || len(m.PeerURLs) == 0 {
				continue
			}
			first, ok := seen[m.ID]
			if !ok {
				first = now
			}
			if now.Sub(first) < after {
				still[m.ID] = first
				continue
			}
			// RemoveMember looks again: a member that started meanwhile
			// has a name and is left alone.
			if err := e.RemoveMember(ctx, m.PeerURLs[0]); err != nil {
				still[m.ID] = first
				continue
			}
			if removed != nil {
				removed(m.PeerURLs[0])
			}
		}
		seen = still
	}
}
