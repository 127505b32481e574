package main

import (
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
)

// tracker follows container events and remembers the first moment want
// containers of a name prefix were running at once.
type tracker struct {
	prefix      string
	want        int
	launch      time.Time
	running     map[string]bool // container ID -> running
	firstAt     time.Time       // the first start
	convergedAt time.Time       // the first moment want were running
}

func newTracker(prefix string, want int, launch time.Time) *tracker {
	return &tracker{prefix: prefix, want: want, launch: launch, running: map[string]bool{}}
}

// wants reports whether m is about a container the tracker follows, since
// the launch.
func (t *tracker) wants(m events.Message) bool {
	if m.Type != "" && m.Type != events.ContainerEventType {
		return false
	}
	// Before the launch: replayed by "since", before our command ran.
	return strings.HasPrefix(m.Actor.Attributes["name"], t.prefix) && !time.Unix(0, m.TimeNano).Before(t.launch)
}

func (t *tracker) observe(m events.Message) {
	if !t.wants(m) {
		return
	}
	at := time.Unix(0, m.TimeNano)
	switch m.Action {
	case events.ActionStart:
		t.running[m.Actor.ID] = true
		if t.firstAt.IsZero() {
			t.firstAt = at
		}
		if len(t.running) >= t.want && t.convergedAt.IsZero() {
			t.convergedAt = at
		}
	case events.ActionDie, events.ActionDestroy:
		delete(t.running, m.Actor.ID)
	}
}
