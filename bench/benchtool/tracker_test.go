package main

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
)

func event(action events.Action, id, name string, at time.Time) events.Message {
	return events.Message{
		Type:     events.ContainerEventType,
		Action:   action,
		Actor:    events.Actor{ID: id, Attributes: map[string]string{"name": name}},
		TimeNano: at.UnixNano(),
	}
}

func TestTracker(t *testing.T) {
	launch := time.Unix(1000, 0)
	at := func(ms int) time.Time { return launch.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name   string
		events []events.Message
		want   time.Duration // zero: not converged
		first  time.Duration // zero: nothing started
	}{
		{
			name: "all start",
			events: []events.Message{
				event(events.ActionStart, "a", "bench-x-1", at(100)),
				event(events.ActionStart, "b", "bench-x-2", at(300)),
				event(events.ActionStart, "c", "bench-x-3", at(200)),
			},
			want:  200 * time.Millisecond, // the third event seen, whatever its stamp order
			first: 100 * time.Millisecond,
		},
		{
			name: "other names do not count",
			events: []events.Message{
				event(events.ActionStart, "a", "bench-x-1", at(100)),
				event(events.ActionStart, "b", "other-bench-x-2", at(150)),
				event(events.ActionStart, "c", "bench-y-3", at(200)),
				event(events.ActionStart, "d", "bench-x-2", at(250)),
			},
		},
		{
			name: "a container that died is not running",
			events: []events.Message{
				event(events.ActionStart, "a", "bench-x-1", at(100)),
				event(events.ActionStart, "b", "bench-x-2", at(200)),
				event(events.ActionDie, "a", "bench-x-1", at(250)),
				event(events.ActionStart, "c", "bench-x-3", at(300)),
				event(events.ActionStart, "d", "bench-x-4", at(400)),
			},
			want:  400 * time.Millisecond,
			first: 100 * time.Millisecond,
		},
		{
			name: "restart of the same container counts once",
			events: []events.Message{
				event(events.ActionStart, "a", "bench-x-1", at(100)),
				event(events.ActionStart, "a", "bench-x-1", at(150)),
				event(events.ActionStart, "b", "bench-x-2", at(200)),
			},
		},
		{
			name: "events from before the launch are ignored",
			events: []events.Message{
				event(events.ActionStart, "a", "bench-x-1", at(-100)),
				event(events.ActionStart, "b", "bench-x-2", at(200)),
				event(events.ActionStart, "c", "bench-x-3", at(300)),
			},
			first: 200 * time.Millisecond,
		},
		{
			name: "first convergence is kept",
			events: []events.Message{
				event(events.ActionStart, "a", "bench-x-1", at(100)),
				event(events.ActionStart, "b", "bench-x-2", at(200)),
				event(events.ActionStart, "c", "bench-x-3", at(300)),
				event(events.ActionDestroy, "c", "bench-x-3", at(400)),
				event(events.ActionStart, "d", "bench-x-4", at(500)),
			},
			want: 300 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker("bench-x-", 3, launch)
			for _, m := range tt.events {
				tr.observe(m)
			}
			var got time.Duration
			if !tr.convergedAt.IsZero() {
				got = tr.convergedAt.Sub(launch)
			}
			if got != tt.want {
				t.Errorf("converged after %v, want %v", got, tt.want)
			}
			var gotFirst time.Duration
			if !tr.firstAt.IsZero() {
				gotFirst = tr.firstAt.Sub(launch)
			}
			if tt.first != 0 && gotFirst != tt.first {
				t.Errorf("first start after %v, want %v", gotFirst, tt.first)
			}
		})
	}
}
