package docker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/ruche-platform/ruche/internal/runtime"
)

// Events streams the container events the agent reacts to.
func (r *Runtime) Events(ctx context.Context, labels map[string]string) (<-chan runtime.Event, <-chan error) {
	f := labelFilters(labels)
	f.Add("type", string(events.ContainerEventType))
	for _, a := range []string{runtime.EventStart, runtime.EventDie, runtime.EventHealth, runtime.EventOOM, runtime.EventDestroy} {
		f.Add("event", a)
	}
	msgs, errs := r.cli.Events(ctx, events.ListOptions{Filters: f})
	out := make(chan runtime.Event, 16)
	errc := make(chan error, 1)
	go func() {
		for {
			select {
			case m := <-msgs:
				ev, ok := fromMessage(m)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-errs:
				if err == nil {
					err = errors.New("docker event stream ended")
				}
				errc <- err
				return
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return out, errc
}

func fromMessage(m events.Message) (runtime.Event, bool) {
	action, health, _ := strings.Cut(string(m.Action), ":")
	action = strings.TrimSpace(action)
	switch action {
	case runtime.EventStart, runtime.EventDie, runtime.EventHealth, runtime.EventOOM, runtime.EventDestroy:
	default:
		return runtime.Event{}, false
	}
	return runtime.Event{
		ContainerID: m.Actor.ID,
		Action:      action,
		Health:      strings.TrimSpace(health),
		Labels:      m.Actor.Attributes,
		Time:        time.Unix(0, m.TimeNano),
	}, true
}
