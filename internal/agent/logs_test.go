package agent

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
)

func TestLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		for slot, nonce := range map[int]string{1: "a1", 2: "b2"} {
			h.put(task(slot, nonce, client.ServiceSpec{Environment: map[string]string{"FAKE_LOG": "line one\npartial"}}))
		}
		other := task(3, "c3", client.ServiceSpec{Environment: map[string]string{"FAKE_LOG": "other\n"}})
		other.Service = "db"
		h.put(other)
		h.waitState("p.web.2.b2", client.StateRunning)
		var buf strings.Builder
		if err := h.agent.Logs(context.Background(), "p", "web", LogOptions{}, &buf); err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		slices.Sort(got)
		want := []string{"web.1 | err line", "web.1 | line one", "web.1 | partial", "web.2 | err line", "web.2 | line one", "web.2 | partial"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestLineWriter(t *testing.T) {
	var out strings.Builder
	lw := (&lockedWriter{w: &out}).prefixed("web.1 | ")
	for _, p := range []string{"a", "b\nc", "\n\nd"} {
		lw.Write([]byte(p))
	}
	if got, want := out.String(), "web.1 | ab\nweb.1 | c\nweb.1 | \n"; got != want {
		t.Errorf("before flush: got %q, want %q", got, want)
	}
	lw.flush()
	if got, want := out.String(), "web.1 | ab\nweb.1 | c\nweb.1 | \nweb.1 | d\n"; got != want {
		t.Errorf("after flush: got %q, want %q", got, want)
	}
}

// TestLineWriterLongLine: output without a newline is cut into lines of
// maxLogLine instead of growing the buffer for as long as it lasts.
func TestLineWriterLongLine(t *testing.T) {
	var out strings.Builder
	lw := (&lockedWriter{w: &out}).prefixed("web.1 | ")
	chunk := strings.Repeat("x", 1000)
	for range 1000 { // a megabyte, no newline
		lw.Write([]byte(chunk))
		if len(lw.buf) >= maxLogLine || cap(lw.buf) > 2*maxLogLine {
			t.Fatalf("partial line kept: %d bytes (capacity %d), want under %d", len(lw.buf), cap(lw.buf), maxLogLine)
		}
	}
	lw.Write([]byte("end\n"))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if got, want := len(lines), 1000*1000/maxLogLine+1; got != want {
		t.Fatalf("lines: got %d, want %d", got, want)
	}
	var joined strings.Builder
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, "web.1 | ")
		if !ok || len(rest) > maxLogLine {
			t.Fatalf("line %d: %d bytes, prefixed %v; want prefixed and at most %d after the prefix", i, len(l), ok, maxLogLine)
		}
		joined.WriteString(rest)
	}
	if got, want := joined.String(), strings.Repeat(chunk, 1000)+"end"; got != want {
		t.Errorf("output lost or changed bytes: got %d bytes, want %d", len(got), len(want))
	}
	// A line of exactly maxLogLine bytes stays one line.
	out.Reset()
	lw.Write([]byte(strings.Repeat("y", maxLogLine) + "\n"))
	if got, want := out.String(), "web.1 | "+strings.Repeat("y", maxLogLine)+"\n"; got != want {
		t.Errorf("a line of maxLogLine bytes: got %d bytes, want %d", len(got), len(want))
	}
}

// followed collects the output of a followed Logs call.
type followed struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (o *followed) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// lines returns the lines of one replica ("web.3"), prefix removed, in order.
func (o *followed) lines(replica string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, l := range strings.Split(o.buf.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, replica+" | "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// follow starts a followed Logs call of service web; stop ends it and
// returns its error.
func (h *harness) follow(opts LogOptions) (out *followed, stop func() error) {
	out = &followed{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts.Follow = true
	go func() { done <- h.agent.Logs(ctx, "p", "web", opts, out) }()
	synctest.Wait()
	return out, func() error {
		cancel()
		return <-done
	}
}

// The fake engine stamps a run's first lines before its StartedAt and its
// last line after its FinishedAt, as Docker does; a followed stream must
// show every line of every run once, whether its streams keep up or lag
// behind the restarts.
func TestLogsFollow(t *testing.T) {
	for _, lag := range []bool{false, true} {
		t.Run(map[bool]string{false: "streams keep up", true: "a stream lags behind two restarts"}[lag], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, newFakeRuntime(testImage))
				h.start()
				defer h.stop()
				h.put(task(1, "a1", client.ServiceSpec{Environment: map[string]string{"FAKE_LOG": "w1 up\n"}}))
				h.waitState("p.web.1.a1", client.StateRunning)
				var hold chan struct{}
				if lag {
					hold = make(chan struct{})
					h.rt.logsHold = hold
				}
				out, stop := h.follow(LogOptions{Tail: 1})

				// A replica that starts later.
				h.put(task(2, "b2", client.ServiceSpec{Environment: map[string]string{"FAKE_LOG": "w2 up\n"}}))
				h.waitState("p.web.2.b2", client.StateRunning)
				// One that crashes after 5s, restarted after 1s then 2s.
				crash := task(3, "c3", client.ServiceSpec{
					Environment:   map[string]string{"FAKE_LOG": "w3 up\n", "FAKE_EXIT_AFTER": "5s", "FAKE_EXIT_LOG": "w3 crash\n"},
					RestartPolicy: client.RestartPolicy{Delay: client.Duration(time.Second)},
				})
				h.put(crash)
				for i := 0; i < 200 && h.status(crash.ID).Restarts < 2; i++ {
					advance(100 * time.Millisecond)
				}
				h.waitState(crash.ID, client.StateRunning)
				if got := h.status(crash.ID).Restarts; got != 2 {
					t.Fatalf("restarts: got %d, want 2", got)
				}
				if lag {
					close(hold)
					synctest.Wait()
				}
				if err := stop(); err != nil {
					t.Errorf("Logs: %v", err)
				}

				run := []string{"w3 up", "err line", "w3 crash"}
				for _, tt := range []struct {
					replica string
					want    []string
				}{
					{"web.1", []string{"err line"}}, // its last line (Tail 1)
					{"web.2", []string{"w2 up", "err line"}},
					{"web.3", slices.Concat(run, run, run[:2])},
				} {
					if got := out.lines(tt.replica); !slices.Equal(got, tt.want) {
						t.Errorf("%s: got %q, want %q", tt.replica, got, tt.want)
					}
				}
			})
		})
	}
}

// A start event the follower missed is made up for by its periodic relist,
// as the agent's resync makes up for missed events.
func TestLogsFollowMissedStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, newFakeRuntime(testImage))
		h.start()
		defer h.stop()
		out, stop := h.follow(LogOptions{})
		h.rt.mute()
		h.put(task(1, "a1", client.ServiceSpec{Environment: map[string]string{"FAKE_LOG": "w1 up\n"}}))
		h.waitState("p.web.1.a1", client.StateRunning)
		if got := out.lines("web.1"); len(got) != 0 {
			t.Fatalf("got %q before any event or relist, want nothing (the test would prove nothing)", got)
		}
		advance(30 * time.Second)
		if got, want := out.lines("web.1"), []string{"w1 up", "err line"}; !slices.Equal(got, want) {
			t.Errorf("after a relist: got %q, want %q", got, want)
		}
		if err := stop(); err != nil {
			t.Errorf("Logs: %v", err)
		}
	})
}
