package events

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// countingStore counts transactions.
type countingStore struct {
	store.Store
	txns int
}

func (c *countingStore) Txn(ctx context.Context, cmps []store.Cmp, ops ...store.Op) (int64, error) {
	c.txns++
	return c.Store.Txn(ctx, cmps, ops...)
}

func TestRecordAll(t *testing.T) {
	tests := []struct {
		events, wantTxns int
	}{
		{0, 0},
		{1, 1},
		{100, 1},
		{250, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.events), func(t *testing.T) {
			ctx := context.Background()
			st := &countingStore{Store: store.NewMemory()}
			rec := NewRecorder(st, slog.New(slog.DiscardHandler))
			var evs []client.Event
			for i := range tt.events {
				evs = append(evs, client.Event{Type: "replica", Action: "scheduled", Message: fmt.Sprint(i)})
			}
			rec.RecordAll(ctx, evs)
			if got := st.txns; got != tt.wantTxns {
				t.Errorf("transactions = %d, want %d", got, tt.wantTxns)
			}
			kvs, _, err := st.List(ctx, store.EventsPrefix)
			if err != nil {
				t.Fatal(err)
			}
			if len(kvs) != tt.events {
				t.Fatalf("stored %d events, want %d", len(kvs), tt.events)
			}
			for i, kv := range kvs {
				var ev client.Event
				if err := store.Decode(kv, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.Message != fmt.Sprint(i) || ev.Time.IsZero() {
					t.Errorf("event %d = %q at %v, want %q with a time", i, ev.Message, ev.Time, fmt.Sprint(i))
				}
			}
		})
	}
}
