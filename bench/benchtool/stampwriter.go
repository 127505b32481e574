package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"
)

// stampWriter prefixes every line written to it with the time elapsed since
// start ("+4.812s "), so a command's log shows when it printed what. It is
// safe for the concurrent writes of a command's stdout and stderr.
type stampWriter struct {
	mu      sync.Mutex
	w       io.Writer
	start   time.Time
	now     func() time.Time
	midLine bool
}

func newStampWriter(w io.Writer, start time.Time) *stampWriter {
	return &stampWriter{w: w, start: start, now: time.Now}
}

func (s *stampWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out bytes.Buffer
	for rest := p; len(rest) > 0; {
		if !s.midLine {
			fmt.Fprintf(&out, "+%.3fs ", s.now().Sub(s.start).Seconds())
		}
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			out.Write(rest)
			s.midLine = true
			break
		}
		out.Write(rest[:i+1])
		s.midLine = false
		rest = rest[i+1:]
	}
	if _, err := s.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}
