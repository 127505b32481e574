package controller

import (
	"sort"
	"strings"

	"github.com/ruche-platform/ruche/client"
)

// waitingFor lists the dependencies (depends_on) that are not satisfied
// yet, as "db (service_healthy), cache (service_started)", or "".
func (p *pass) waitingFor() string {
	deps := p.v.rec.Spec.DependsOn
	names := make([]string, 0, len(deps))
	for name := range deps {
		names = append(names, name)
	}
	sort.Strings(names)
	var waits []string
	for _, name := range names {
		d := deps[name]
		cond := d.Condition
		if cond == "" {
			cond = client.ConditionStarted
		}
		ok, exists := p.r.satisfied(svcKey{p.v.key.project, name}, cond)
		if ok || (!exists && !d.Required) {
			continue
		}
		if !exists {
			waits = append(waits, name+" (not deployed)")
			continue
		}
		waits = append(waits, name+" ("+cond+")")
	}
	return strings.Join(waits, ", ")
}

// satisfied reports whether every desired replica of service k meets cond:
// service_started, a started container (starting, running, unhealthy, or
// exited 0: a one-shot job has started);
// service_healthy, Ready; service_completed_successfully, exited 0. exists
// is false when k has no record.
func (r *run) satisfied(k svcKey, cond string) (ok, exists bool) {
	v := r.cache.view(k)
	if v.rec == nil {
		return false, false
	}
	for n := 1; n <= v.rec.Spec.Replicas; n++ {
		met := false
		for _, t := range v.tasks {
			if t.rec.Slot == n && t.running() && meets(t, cond) {
				met = true
				break
			}
		}
		if !met {
			return false, true
		}
	}
	return true, true
}

func meets(t *task, cond string) bool {
	switch cond {
	case client.ConditionHealthy:
		return t.ready()
	case client.ConditionCompleted:
		return t.state() == client.StateComplete
	default:
		switch t.state() {
		case client.StateStarting, client.StateRunning, client.StateUnhealthy, client.StateComplete:
			return true
		}
		return false
	}
}
