package main

import (
	"bytes"
	"testing"
	"time"
)

func TestStampWriter(t *testing.T) {
	start := time.Unix(100, 0)
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "lines", writes: []string{"a\nb\n"}, want: "+1.500s a\n+1.500s b\n"},
		{name: "split line", writes: []string{"ab", "c\nd", "\n"}, want: "+1.500s abc\n+1.500s d\n"},
		{name: "empty", writes: []string{""}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			s := newStampWriter(&b, start)
			s.now = func() time.Time { return start.Add(1500 * time.Millisecond) }
			for _, w := range tt.writes {
				n, err := s.Write([]byte(w))
				if err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := b.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
