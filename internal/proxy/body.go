package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// syncBodyMax: a request body of known length up to this size is written
// by the handler goroutine before it reads the response (the socket
// buffers absorb it); a larger or unknown one is written by a goroutine
// of its own, so an upstream that answers before reading it all cannot
// deadlock the exchange.
const syncBodyMax = 64 << 10

// copyError says which side failed while copying.
type copyError struct {
	client bool // writing to the client (or reading its body) failed
	err    error
}

func (e *copyError) Error() string { return e.err.Error() }
func (e *copyError) Unwrap() error { return e.err }

// bodyCopier copies a response body from an upstream connection to the
// client through the connection's read buffer. It flushes the client
// side whenever it is about to wait for the upstream, so streamed
// responses (server-sent events, long polls) are never held back, and
// responses already in the buffer go out in one write.
type bodyCopier struct {
	w       http.ResponseWriter
	flusher http.Flusher
	br      *bufio.Reader
	c       *conn // its watch is armed before waiting; nil in tests
	n       int64 // bytes written to the client
	dirty   bool  // written since the last flush
}

// fill makes sure some bytes are buffered, flushing first if it must
// wait for them. It waits quietly for watchAfter, then watches the
// client (as waitHead): most waits for more body are short, and watching
// costs the client's server a background read of its connection.
func (bc *bodyCopier) fill() error {
	if bc.br.Buffered() > 0 {
		return nil
	}
	if bc.dirty && bc.flusher != nil {
		bc.flusher.Flush()
		bc.dirty = false
	}
	if c := bc.c; c != nil && c.watch.stop == nil && c.watch.ctx != nil {
		c.nc.SetReadDeadline(time.Now().Add(watchAfter))
		_, err := bc.br.Peek(1)
		c.nc.SetReadDeadline(time.Time{})
		if err == nil || !isTimeout(err) {
			return err
		}
		c.arm()
	}
	_, err := bc.br.Peek(1)
	return err
}

// copyN copies exactly n bytes.
func (bc *bodyCopier) copyN(n int64) error {
	for n > 0 {
		if err := bc.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &copyError{err: err}
		}
		k := bc.br.Buffered()
		if int64(k) > n {
			k = int(n)
		}
		b, _ := bc.br.Peek(k)
		m, err := bc.w.Write(b)
		bc.br.Discard(m)
		bc.n += int64(m)
		n -= int64(m)
		bc.dirty = true
		if err != nil {
			return &copyError{client: true, err: err}
		}
	}
	return nil
}

// copyUntilEOF copies until the upstream closes.
func (bc *bodyCopier) copyUntilEOF() error {
	for {
		if err := bc.fill(); err != nil {
			if err == io.EOF {
				return nil
			}
			return &copyError{err: err}
		}
		if err := bc.copyN(int64(bc.br.Buffered())); err != nil {
			return err
		}
	}
}

// copyChunked decodes a chunked body, then forwards its trailers.
func (bc *bodyCopier) copyChunked(h *respHead) error {
	for {
		if err := bc.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &copyError{err: err}
		}
		line, err := bc.br.ReadSlice('\n')
		if err != nil {
			return &copyError{err: fmt.Errorf("%w: chunk size: %w", errProtocol, err)}
		}
		size, ok := parseChunkSize(trimEOL(line))
		if !ok {
			return &copyError{err: fmt.Errorf("%w: chunk size %q", errProtocol, clip(line))}
		}
		if size == 0 {
			if err := readTrailers(bc.br, h); err != nil {
				return &copyError{err: err}
			}
			h.forwardTrailers(bc.w.Header())
			return nil
		}
		if err := bc.copyN(size); err != nil {
			return err
		}
		if err := bc.fill(); err != nil {
			return &copyError{err: io.ErrUnexpectedEOF}
		}
		crlf, err := bc.br.ReadSlice('\n')
		if err != nil || len(trimEOL(crlf)) != 0 {
			return &copyError{err: fmt.Errorf("%w: chunk not ended by CRLF", errProtocol)}
		}
	}
}

// parseChunkSize parses a chunk-size line, ignoring extensions.
func parseChunkSize(b []byte) (int64, bool) {
	for i, c := range b {
		if c == ';' || c == ' ' || c == '\t' {
			b = b[:i]
			break
		}
	}
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// forwardTrailers sets the trailer fields read last as response trailers.
func (h *respHead) forwardTrailers(hdr http.Header) {
	for i := range h.fields {
		f := &h.fields[i]
		hdr[http.TrailerPrefix+string(h.keyBytes(f))] = []string{string(h.valueBytes(f))}
	}
}

// writeBody copies a request body of length bytes (-1: unknown, sent
// chunked) into bw, then flushes. A failure to read the body is a
// *copyError with client set; a failure to write is returned as is.
func writeBody(bw *bufio.Writer, body io.Reader, length int64) error {
	if length < 0 {
		return writeChunked(bw, body)
	}
	for length > 0 {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()[:min(int64(bw.Available()), length)]
		n, err := body.Read(buf)
		bw.Write(buf[:n])
		length -= int64(n)
		if err != nil {
			if err == io.EOF && length == 0 {
				break
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &copyError{client: true, err: err}
		}
	}
	return bw.Flush()
}

// bufPool holds copy buffers for the rare paths (chunked request bodies);
// the hot path copies through the connections' own buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

func writeChunked(bw *bufio.Writer, body io.Reader) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var scratch [16]byte
	for {
		n, err := body.Read(buf)
		if n > 0 {
			bw.Write(strconv.AppendInt(scratch[:0], int64(n), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:n])
			if _, werr := bw.WriteString("\r\n"); werr != nil {
				return werr
			}
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if err == io.EOF {
			bw.WriteString("0\r\n\r\n")
			return bw.Flush()
		}
		if err != nil {
			return &copyError{client: true, err: err}
		}
	}
}

// limitedBody fails with errBodyTooLarge past max bytes.
type limitedBody struct {
	r   io.ReadCloser
	max int64
	n   int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.max-l.n+1 {
		p = p[:l.max-l.n+1]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return n, errBodyTooLarge
	}
	return n, err
}

func (l *limitedBody) Close() error { return l.r.Close() }

// stallBody gives up a request body that sends nothing for timeout, so a
// client that stops mid-body cannot hold its connection and an upstream
// one forever (the server has no ReadTimeout: a long upload must not be
// cut). Before each read it moves the connection's read deadline, through
// net/http's ResponseController (HTTP/1 and HTTP/2 alike). finish clears
// the deadline once the body was read whole, so that it cannot fire later
// while the response is awaited (net/http's HTTP/1 server also clears it
// when a body ends). After a failed read the deadline stays: net/http
// then cannot wait on the rest of the body either, and closes the
// connection. net/http cancels the request when the read times out; the
// client still gets its 408 (failAfter).
type stallBody struct {
	r       io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *stallBody) Read(p []byte) (int, error) {
	_ = s.rc.SetReadDeadline(time.Now().Add(s.timeout))
	n, err := s.r.Read(p)
	if err != nil && isTimeout(err) {
		err = fmt.Errorf("%w: nothing for %s: %w", errBodyStalled, s.timeout, err)
	}
	return n, err
}

func (s *stallBody) Close() error { return s.r.Close() }

// finish clears the read deadline; s may be nil (no body).
func (s *stallBody) finish() {
	if s != nil {
		_ = s.rc.SetReadDeadline(time.Time{})
	}
}

// clientSide reports whether err is a *copyError on the client's side.
func clientSide(err error) bool {
	var ce *copyError
	return errors.As(err, &ce) && ce.client
}
