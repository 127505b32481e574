package benchcli

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

func TestExec(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name       string
		ctx        context.Context
		err        error
		wantCode   int
		wantStderr string
	}{
		{name: "success", ctx: context.Background(), wantCode: 0},
		{name: "error", ctx: context.Background(), err: errors.New("usage: tool x"), wantCode: 1, wantStderr: "tool: usage: tool x\n"},
		{name: "interrupted", ctx: cancelled, err: context.Canceled, wantCode: 130, wantStderr: "tool: context canceled\n"},
		{name: "cancelled but succeeded", ctx: cancelled, wantCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotArgs []string
			run := func(_ context.Context, args []string) error {
				gotArgs = args
				return tt.err
			}
			var stderr bytes.Buffer
			code := Exec(tt.ctx, "tool", run, []string{"ports", "3"}, &stderr)
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d", code, tt.wantCode)
			}
			if got := stderr.String(); got != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", got, tt.wantStderr)
			}
			if want := []string{"ports", "3"}; !slices.Equal(gotArgs, want) {
				t.Errorf("run got args %q, want %q", gotArgs, want)
			}
		})
	}
}
