package certs

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"go.uber.org/zap"
)

func TestZapToSlog(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})
	zl := zap.New(newSlogCore(slog.New(h).With("component", "certs").Handler())).Named("obtain").With(zap.String("identifier", "app.example.org"))

	zl.Debug("hidden")
	zl.Info("lock acquired", zap.Int("attempt", 2))
	zl.Error("could not get certificate", zap.Error(errors.New("boom")))

	var got []map[string]any
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		got = append(got, rec)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2 (debug filtered): %v", len(got), got)
	}
	tests := []struct {
		i    int
		key  string
		want any
	}{
		{0, "level", "INFO"},
		{0, "msg", "lock acquired"},
		{0, "component", "certs"},
		{0, "logger", "obtain"},
		{0, "identifier", "app.example.org"},
		{0, "attempt", float64(2)},
		{1, "level", "ERROR"},
		{1, "error", "boom"},
	}
	for _, tt := range tests {
		if g := got[tt.i][tt.key]; g != tt.want {
			t.Errorf("record %d %s: got %v, want %v", tt.i, tt.key, g, tt.want)
		}
	}
}
