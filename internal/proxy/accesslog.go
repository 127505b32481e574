package proxy

import (
	"io"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessLog writes one JSON object per line and request. Lines are built
// in pooled buffers with append-style encoders (no fmt, no reflection) and
// written whole under a lock, so lines never interleave.
type accessLog struct {
	mu sync.Mutex
	w  io.Writer
}

// logEntry is what an access log line says.
type logEntry struct {
	start    time.Time
	duration time.Duration
	client   netip.Addr
	method   string
	host     string
	path     string
	proto    string
	status   int
	bytes    int64
	route    string
	upstream string
	retries  int
	err      string // error kind, "" if none
}

var logBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *accessLog) write(e *logEntry) {
	bp := logBufPool.Get().(*[]byte)
	b := appendEntry((*bp)[:0], e)
	l.mu.Lock()
	l.w.Write(b)
	l.mu.Unlock()
	if cap(b) <= 64<<10 {
		*bp = b
		logBufPool.Put(bp)
	}
}

func appendEntry(b []byte, e *logEntry) []byte {
	b = append(b, `{"time":"`...)
	b = e.start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","client":"`...)
	if e.client.IsValid() {
		b = e.client.AppendTo(b)
	}
	b = append(b, `","method":`...)
	b = appendJSONString(b, e.method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.path)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, e.proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendFloat(b, e.duration.Seconds(), 'f', -1, 64)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, e.route)
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, e.upstream)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(e.retries), 10)
	if e.err != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, e.err)
	}
	return append(b, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
