package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ruche-platform/ruche/client"
)

// ErrFull is returned for writes refused because the store reached its
// quota (etcd's NOSPACE alarm). Reads keep working; writes come back once
// space is reclaimed (compaction, defragmentation) and the alarm is disarmed.
var ErrFull = errors.New("store is full")

// NearQuota is the fraction of the quota from which the store is reported
// as nearly full (status warning, before etcd refuses writes).
const NearQuota = 0.8

// isNoSpace reports whether err is etcd's "database space exceeded".
func isNoSpace(err error) bool {
	if errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrGRPCNoSpace) {
		return true
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.ResourceExhausted &&
		strings.Contains(s.Message(), "database space exceeded") {
		return true
	}
	return strings.Contains(err.Error(), "database space exceeded")
}

// fullError wraps a NOSPACE error as ErrFull with what to do about it.
func fullError(err error) error {
	return fmt.Errorf("%w: the database reached its quota and etcd refuses writes (%v); "+
		"old revisions are compacted hourly and the leader defragments and disarms the alarm once there is room, "+
		"or restart with a larger --store-quota", ErrFull, err)
}

// MemberUsage is the size of one etcd member's database.
type MemberUsage struct {
	Endpoint string // "" for the in-process member
	ID       uint64
	DBSize   int64 // file size: what counts against the quota
	InUse    int64 // logically used; the rest is reclaimed by defragmentation
	Quota    int64
	Leader   bool
	Version  string
}

// Usage is the store's size and alarms across its members.
type Usage struct {
	Members  []MemberUsage
	Revision int64
	// Alarms are the raised etcd alarms ("NOSPACE", "CORRUPT") with the
	// member they concern.
	Alarms []Alarm
}

// Alarm is one raised etcd alarm.
type Alarm struct {
	Member uint64
	Type   string
}

// Largest is the member with the largest database (the one nearest its
// quota): what status and metrics report.
func (u Usage) Largest() MemberUsage {
	var m MemberUsage
	for i, x := range u.Members {
		if i == 0 || x.DBSize > m.DBSize {
			m = x
		}
	}
	return m
}

// NoSpace reports whether the NOSPACE alarm is raised.
func (u Usage) NoSpace() bool {
	for _, a := range u.Alarms {
		if a.Type == pb.AlarmType_NOSPACE.String() {
			return true
		}
	}
	return false
}

// NearFull reports whether a member's database reached NearQuota of its quota.
func (m MemberUsage) NearFull() bool {
	return m.Quota > 0 && float64(m.DBSize) >= NearQuota*float64(m.Quota)
}

// endpoints are the members to ask: the client's endpoints, or the
// in-process member ("") for the embedded client, which has none.
func (e *Etcd) endpoints() []string {
	if eps := e.cli.Endpoints(); len(eps) > 0 {
		return eps
	}
	return []string{""}
}

// Usage asks every member for its database size and lists the alarms. A
// member that does not answer is left out; Usage fails only when none does.
func (e *Etcd) Usage(ctx context.Context) (Usage, error) {
	var u Usage
	var lastErr error
	for _, ep := range e.endpoints() {
		st, err := e.cli.Status(ctx, ep)
		if err != nil {
			lastErr = err
			continue
		}
		u.Members = append(u.Members, MemberUsage{
			Endpoint: ep, ID: st.Header.MemberId, DBSize: st.DbSize, InUse: st.DbSizeInUse,
			Quota: st.DbSizeQuota, Leader: st.Leader == st.Header.MemberId, Version: st.Version,
		})
		if st.Header.Revision > u.Revision {
			u.Revision = st.Header.Revision
		}
	}
	if len(u.Members) == 0 {
		return u, fmt.Errorf("store status: %w", lastErr)
	}
	al, err := e.cli.AlarmList(ctx)
	if err != nil {
		return u, fmt.Errorf("store alarms: %w", err)
	}
	for _, a := range al.Alarms {
		u.Alarms = append(u.Alarms, Alarm{Member: a.MemberID, Type: a.Alarm.String()})
	}
	return u, nil
}

// Defragment defragments the member at endpoint ("" for the in-process
// one). The member does not serve while it runs.
func (e *Etcd) Defragment(ctx context.Context, endpoint string) error {
	if _, err := e.cli.Defragment(ctx, endpoint); err != nil {
		return fmt.Errorf("defragment %s: %w", endpointName(endpoint), err)
	}
	return nil
}

// Compact drops the history before rev (keys keep their latest value).
// Compaction is accepted even when the store is full.
func (e *Etcd) Compact(ctx context.Context, rev int64) error {
	if _, err := e.cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil
		}
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// DisarmNoSpace clears the NOSPACE alarm of every member so writes are
// accepted again.
func (e *Etcd) DisarmNoSpace(ctx context.Context) error {
	al, err := e.cli.AlarmList(ctx)
	if err != nil {
		return fmt.Errorf("store alarms: %w", err)
	}
	for _, a := range al.Alarms {
		if a.Alarm != pb.AlarmType_NOSPACE {
			continue
		}
		if _, err := e.cli.AlarmDisarm(ctx, (*clientv3.AlarmMember)(a)); err != nil {
			return fmt.Errorf("disarm alarm: %w", err)
		}
	}
	return nil
}

// SnapshotInfo describes a snapshot written by Snapshot.
type SnapshotInfo struct {
	Size    int64
	Version string // etcd storage version of the snapshot
}

// Snapshot writes a consistent snapshot of the whole store (etcd's backend
// file, with etcd's own sha256 appended, as `etcdctl snapshot save` does)
// to w.
func (e *Etcd) Snapshot(ctx context.Context, w io.Writer) (SnapshotInfo, error) {
	resp, err := e.cli.SnapshotWithVersion(ctx)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	defer resp.Snapshot.Close()
	n, err := io.Copy(w, resp.Snapshot)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot: %w", err)
	}
	// etcd sends no revision with a snapshot: read it from the file
	// (etcdutl's snapshot status) when it matters.
	return SnapshotInfo{Size: n, Version: resp.Version}, nil
}

// StoreStatus is the store as `ruche status` shows it (the apiserver's
// StoreStatus func).
func (e *Etcd) StoreStatus(ctx context.Context) client.StoreStatus {
	st := client.StoreStatus{Endpoint: e.Endpoint()}
	u, err := e.Usage(ctx)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	m := u.Largest()
	st.DBSize, st.DBSizeInUse, st.Quota, st.Revision = m.DBSize, m.InUse, m.Quota, u.Revision
	st.Members = len(u.Members)
	st.Healthy = true
	for _, a := range u.Alarms {
		st.Alarms = append(st.Alarms, a.Type)
		if a.Type == pb.AlarmType_CORRUPT.String() {
			st.Healthy = false
			st.Warnings = append(st.Warnings, fmt.Sprintf("store member %x reports data corruption (CORRUPT alarm): restore it from a backup", a.Member))
		}
	}
	if u.NoSpace() {
		st.Healthy = false
		st.Warnings = append(st.Warnings, "store is full: etcd refuses writes (NOSPACE alarm) until space is reclaimed")
	} else if m.NearFull() {
		st.Warnings = append(st.Warnings, fmt.Sprintf("store is nearly full: %d%% of its quota (etcd refuses writes at 100%%)",
			m.DBSize*100/m.Quota))
	}
	return st
}

// Endpoint describes where the store is: "embedded etcd" or the external
// endpoints.
func (e *Etcd) Endpoint() string {
	if eps := e.cli.Endpoints(); len(eps) > 0 {
		return "etcd " + strings.Join(eps, ",")
	}
	return "embedded etcd"
}

func endpointName(ep string) string {
	if ep == "" {
		return "local member"
	}
	return ep
}
