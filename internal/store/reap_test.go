package store

import (
	"context"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/internal/testports"
)

// TestReapUnstartedLearners: a learner whose member never starts is
// removed once it has gone unstarted for the time given; the running
// member stays.
func TestReapUnstartedLearners(t *testing.T) {
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), Name: "m1", ClientAddr: testports.Free(t), PeerAddr: testports.Free(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ghost := "http://" + testports.Free(t) // nothing will ever start there
	if _, err := e.AddMember(ctx, "ghost", ghost); err != nil {
		t.Fatal(err)
	}
	removed := make(chan string, 1)
	added := time.Now()
	go e.ReapUnstartedLearners(ctx, time.Second, func(u string) { removed <- u })
	select {
	case u := <-removed:
		if u != ghost {
			t.Fatalf("removed %s, want %s", u, ghost)
		}
		if d := time.Since(added); d < time.Second {
			t.Errorf("removed after %v, before the second it was given", d)
		}
	case <-ctx.Done():
		t.Fatal("the unstarted learner was never removed")
	}
	ms, err := e.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Name != "m1" {
		t.Fatalf("members after the reap: %+v, want m1 alone", ms)
	}
}
