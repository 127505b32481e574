package nodeapi

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// lockedWriter serialises whole lines of several streams onto one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lineWriter hands only complete lines to w, in one Write each batch, so
// lines of several streams never mix. A line "error: ..." (the node API's
// failure line; replica lines always carry their "web.2 | " prefix) is
// kept aside in remoteErr instead.
type lineWriter struct {
	w         io.Writer
	buf       []byte
	remoteErr string
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	var batch []byte
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			break
		}
		line := lw.buf[:i+1]
		if msg, ok := strings.CutPrefix(string(line), "error: "); ok {
			lw.remoteErr = strings.TrimSpace(msg)
		} else {
			batch = append(batch, line...)
		}
		lw.buf = lw.buf[i+1:]
	}
	if len(batch) > 0 {
		if _, err := lw.w.Write(batch); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush ends a partial last line.
func (lw *lineWriter) flush() {
	if len(lw.buf) > 0 {
		_, _ = lw.Write([]byte("\n"))
	}
}
