package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Maintainer is what housekeeping needs of the store (Etcd, Embedded and
// External implement it).
type Maintainer interface {
	Usage(ctx context.Context) (Usage, error)
	Defragment(ctx context.Context, endpoint string) error
	Compact(ctx context.Context, rev int64) error
	DisarmNoSpace(ctx context.Context) error
}

// HousekeeperConfig tunes housekeeping; zero values take the defaults.
type HousekeeperConfig struct {
	// Check is how often the members' sizes are looked at (default 10m).
	Check time.Duration
	// DefragEvery is the routine defragmentation interval (default 24h).
	DefragEvery time.Duration
	// MinReclaim is the least a routine defragmentation must free
	// (default 64 MiB): below it, the pause is not worth it.
	MinReclaim int64
}

// Housekeeper keeps the store's file within its quota. etcd compacts old
// revisions by itself (auto-compaction, 1h); compaction frees pages inside
// the file but never shrinks it, and the quota counts the file. So, run on
// the leader only, one member at a time (a member being defragmented does
// not serve):
//
//   - routine: every DefragEvery, defragment a member whose free pages are
//     at least half of its file and at least MinReclaim;
//   - near the quota (file >= 80% of it): defragment at the next check if
//     that frees at least a tenth of the file;
//   - NOSPACE alarm raised (etcd refuses writes): compact to the current
//     revision, defragment every member, and disarm the alarm if every
//     file is then below 80% of its quota; else say that the quota must
//     grow or data must go.
type Housekeeper struct {
	cfg  HousekeeperConfig
	m    Maintainer
	log  *slog.Logger
	runs *prometheus.CounterVec
	last map[string]time.Time // last routine defragmentation per member
}

// NewHousekeeper returns a housekeeper; it does no I/O.
func NewHousekeeper(cfg HousekeeperConfig, m Maintainer, log *slog.Logger, reg prometheus.Registerer) *Housekeeper {
	if cfg.Check == 0 {
		cfg.Check = 10 * time.Minute
	}
	if cfg.DefragEvery == 0 {
		cfg.DefragEvery = 24 * time.Hour
	}
	if cfg.MinReclaim == 0 {
		cfg.MinReclaim = 64 << 20
	}
	h := &Housekeeper{cfg: cfg, m: m, log: log.With("component", "store-housekeeper"), last: map[string]time.Time{},
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ruche_store_defragmentations_total",
			Help: "Defragmentations of store members run by the leader, by reason (routine, near_quota, nospace) and result.",
		}, []string{"reason", "result"}),
	}
	if reg != nil {
		reg.MustRegister(h.runs)
	}
	return h
}

// Run checks the store every Check until ctx ends. Call it while leading.
func (h *Housekeeper) Run(ctx context.Context) error {
	start := time.Now()
	t := time.NewTicker(h.cfg.Check)
	defer t.Stop()
	for {
		h.check(ctx, start)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (h *Housekeeper) check(ctx context.Context, start time.Time) {
	u, err := h.m.Usage(ctx)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("store usage", "err", err)
		}
		return
	}
	if u.NoSpace() {
		h.recover(ctx, u)
		return
	}
	now := time.Now()
	for _, m := range u.Members {
		free := m.DBSize - m.InUse
		last, ok := h.last[m.Endpoint]
		if !ok {
			last = start
		}
		switch {
		case m.NearFull() && free >= m.DBSize/10:
			h.defrag(ctx, m, "near_quota")
		case m.NearFull():
			h.log.Warn("store is nearly full and defragmentation would not help: raise --store-quota or remove data",
				"member", endpointName(m.Endpoint), "db_size", m.DBSize, "in_use", m.InUse, "quota", m.Quota)
		case now.Sub(last) >= h.cfg.DefragEvery && free >= m.DBSize/2 && free >= h.cfg.MinReclaim:
			h.defrag(ctx, m, "routine")
			h.last[m.Endpoint] = now
		}
	}
}

// recover handles the NOSPACE alarm.
func (h *Housekeeper) recover(ctx context.Context, u Usage) {
	h.log.Error("store is full: etcd refuses writes; compacting and defragmenting", "revision", u.Revision)
	if err := h.m.Compact(ctx, u.Revision); err != nil {
		h.log.Error("compact full store", "err", err)
		return
	}
	for _, m := range u.Members {
		h.defrag(ctx, m, "nospace")
	}
	after, err := h.m.Usage(ctx)
	if err != nil {
		h.log.Error("store usage after defragmentation", "err", err)
		return
	}
	for _, m := range after.Members {
		if m.NearFull() {
			h.log.Error("store still full after compaction and defragmentation: raise --store-quota or remove data",
				"member", endpointName(m.Endpoint), "db_size", m.DBSize, "in_use", m.InUse, "quota", m.Quota)
			return
		}
	}
	if err := h.m.DisarmNoSpace(ctx); err != nil {
		h.log.Error("disarm store alarm", "err", err)
		return
	}
	h.log.Info("store has room again: writes accepted")
}

func (h *Housekeeper) defrag(ctx context.Context, m MemberUsage, reason string) {
	start := time.Now()
	if err := h.m.Defragment(ctx, m.Endpoint); err != nil {
		h.runs.WithLabelValues(reason, "error").Inc()
		h.log.Error("defragment store member", "member", endpointName(m.Endpoint), "reason", reason, "err", err)
		return
	}
	h.runs.WithLabelValues(reason, "ok").Inc()
	h.log.Info("defragmented store member", "member", endpointName(m.Endpoint), "reason", reason,
		"db_size_before", m.DBSize, "in_use", m.InUse, "took", time.Since(start).Round(time.Millisecond))
}

// UsageCollector exports the store's size as Prometheus metrics, read from
// the store at each scrape.
type UsageCollector struct {
	m                        UsageReader
	size, inUse, quota, alrm *prometheus.Desc
}

// UsageReader reads the store's usage.
type UsageReader interface {
	Usage(ctx context.Context) (Usage, error)
}

// NewUsageCollector returns a collector over m.
func NewUsageCollector(m UsageReader) *UsageCollector {
	return &UsageCollector{
		m:     m,
		size:  prometheus.NewDesc("ruche_store_db_size_bytes", "Size of the store member's database file (what counts against the quota).", []string{"member"}, nil),
		inUse: prometheus.NewDesc("ruche_store_db_size_in_use_bytes", "Part of the store member's database file holding data.", []string{"member"}, nil),
		quota: prometheus.NewDesc("ruche_store_quota_bytes", "Store member's quota: writes are refused beyond it.", []string{"member"}, nil),
		alrm:  prometheus.NewDesc("ruche_store_alarm", "1 for each raised store alarm (NOSPACE: writes refused).", []string{"member", "alarm"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *UsageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.inUse
	ch <- c.quota
	ch <- c.alrm
}

// Collect implements prometheus.Collector.
func (c *UsageCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	u, err := c.m.Usage(ctx)
	if err != nil {
		return
	}
	for _, m := range u.Members {
		id := fmt.Sprintf("%x", m.ID)
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(m.DBSize), id)
		ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(m.InUse), id)
		ch <- prometheus.MustNewConstMetric(c.quota, prometheus.GaugeValue, float64(m.Quota), id)
	}
	for _, a := range u.Alarms {
		ch <- prometheus.MustNewConstMetric(c.alrm, prometheus.GaugeValue, 1, fmt.Sprintf("%x", a.Member), a.Type)
	}
}
