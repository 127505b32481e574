package agent

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ruche-platform/ruche/client"
)

// metrics are the agent's Prometheus metrics. ruche_replicas is computed at
// scrape time from the replicas' current states.
type metrics struct {
	starts   prometheus.Counter
	restarts prometheus.Counter
	replicas *prometheus.Desc

	mu     sync.Mutex
	states map[string]string // task -> state
}

var allStates = []string{
	client.StatePending, client.StatePreparing, client.StateStarting, client.StateRunning,
	client.StateUnhealthy, client.StateRestarting, client.StateFailed, client.StateComplete,
	client.StateStopping, client.StateShutdown,
}

func newMetrics() *metrics {
	return &metrics{
		starts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ruche_agent_container_starts_total", Help: "Containers started by the agent, restarts included.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ruche_agent_restarts_total", Help: "Replica restarts applied by the restart policy.",
		}),
		replicas: prometheus.NewDesc("ruche_replicas", "Replicas on this node by state.", []string{"state"}, nil),
		states:   map[string]string{},
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.starts, m.restarts, m} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) setState(task, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if state == "" {
		delete(m.states, task)
		return
	}
	m.states[task] = state
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.replicas }

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	counts := map[string]int{}
	for _, s := range m.states {
		counts[s]++
	}
	m.mu.Unlock()
	for _, s := range allStates {
		ch <- prometheus.MustNewConstMetric(m.replicas, prometheus.GaugeValue, float64(counts[s]), s)
	}
}
