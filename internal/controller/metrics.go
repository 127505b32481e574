package controller

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
)

// metrics are the controller's Prometheus metrics.
type metrics struct {
	passes   prometheus.Counter
	created  prometheus.Counter
	replaced prometheus.Counter
	updates  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ruche_reconcile_passes_total",
			Help: "Reconcile passes of a service by the controller.",
		}),
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ruche_controller_tasks_created_total",
			Help: "Replica tasks created by the controller.",
		}),
		replaced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ruche_controller_replicas_replaced_total",
			Help: "Failed or completed replicas replaced with a new task by the controller (restart_policy).",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ruche_service_updates_total",
			Help: "Service rollouts (deploys, updates, scales, rollbacks) that ended, by result.",
		}, []string{"result"}),
	}
	for _, r := range []string{client.UpdateCompleted, client.UpdateRolledBack, client.UpdatePaused, client.UpdateFailed} {
		m.updates.WithLabelValues(r)
	}
	if reg != nil {
		m.passes = register(reg, m.passes)
		m.created = register(reg, m.created)
		m.replaced = register(reg, m.replaced)
		m.updates = register(reg, m.updates)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name (a second controller in the same process, as after a new
// leadership term, shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
