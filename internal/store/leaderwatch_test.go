package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/testports"
)

func TestStaleSessions(t *testing.T) {
	keys := []electionKey{
		{key: "/ruche/election/controller/1", value: "a", lease: 1},
		{key: "/ruche/election/controller/2", value: "b", lease: 2},
		{key: "/ruche/election/store-housekeeping/1", value: "a", lease: 1},
		{key: "/ruche/election/store-housekeeping/3", value: "a", lease: 3},
		{key: "/ruche/election/other/4", value: "c", lease: NoLease},
	}
	const a, b, c = 10, 20, 30 // member IDs; their managers are "a", "b", "c"
	for _, tc := range []struct {
		name          string
		prev, cur, me uint64
		prevName      string
		want          []LeaseID
	}{
		{"I take over from a", a, b, b, "a", []LeaseID{1, 3}},
		{"I take over from c (no lease)", c, b, b, "c", nil},
		{"another member takes over", a, c, b, "a", nil},
		{"no previous leader (a new cluster)", 0, b, b, "", nil},
		{"I led before (re-elected)", b, b, b, "b", nil},
		{"previous leader's name unknown (removed)", a, b, b, "", nil},
		{"nobody leads", a, 0, b, "a", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := staleSessions(tc.prev, tc.cur, tc.me, tc.prevName, keys)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLeaderWatchRevokes: three members; the etcd leader stops without
// handing over (as if killed). The new leader revokes the sessions of the
// dead leader's manager at once (their lease is 10 minutes: nothing else
// removes them within the test), and only those.
func TestLeaderWatchRevokes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three etcd members")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	names := []string{"a", "b", "c"}
	ms := map[string]*Embedded{}
	for i, name := range names {
		cfg := EmbeddedConfig{Dir: t.TempDir(), Name: name, ClientAddr: testports.Free(t), PeerAddr: testports.Free(t), ElectionMs: 500, HeartbeatMs: 50}
		if i > 0 {
			// A member joins a cluster whose version is decided (etcd
			// refuses it as "incompatible" before).
			for ms["a"].e.Server.ClusterVersion() == nil && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
			}
			// Refused ("unhealthy") until a has been connected to the
			// voting members for 5 s.
			ic, err := ms["a"].AddMember(ctx, name, "http://"+cfg.PeerAddr)
			for err != nil && ctx.Err() == nil {
				time.Sleep(200 * time.Millisecond)
				ic, err = ms["a"].AddMember(ctx, name, "http://"+cfg.PeerAddr)
			}
			if err != nil {
				t.Fatalf("add member %s: %v", name, err)
			}
			cfg.InitialCluster, cfg.Existing = ic, true
		}
		m, err := StartEmbedded(cfg)
		if err != nil {
			t.Fatalf("member %s: %v", name, err)
		}
		defer m.Close()
		if err := m.Promote(ctx); err != nil { // added as a learner
			t.Fatalf("member %s: %v", name, err)
		}
		ms[name] = m
	}
	var lead string
	for lead == "" && ctx.Err() == nil {
		for name, m := range ms {
			if uint64(m.e.Server.Leader()) == m.MemberID() {
				lead = name
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	var other string
	for _, name := range names {
		if name != lead {
			other = name
			break
		}
	}
	// Candidates' keys on long leases: the leader's manager and another.
	key := func(name string) string { return ElectionPrefix + "controller/" + name }
	for _, name := range []string{lead, other} {
		l, err := ms[other].Grant(ctx, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ms[other].Txn(ctx, nil, PutWithLease(key(name), []byte(name), l)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("etcd leader %s stops", lead)
	ms[lead].e.Server.HardStop() // no leadership transfer: as if killed
	for ctx.Err() == nil {
		if _, err := ms[other].Get(ctx, key(lead)); errors.Is(err, ErrNotFound) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatalf("the dead leader's (%s) election key is still there", lead)
	}
	t.Logf("its election key went")
	if _, err := ms[other].Get(ctx, key(other)); err != nil {
		t.Errorf("the live manager's (%s) election key: %v, want kept", other, err)
	}
}
