package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Buffer sizes of a connection, as net/http's.
const (
	readBufSize  = 4 << 10
	writeBufSize = 4 << 10
)

// maxDiscard is how much of a request body the handler left unread is
// read and dropped to keep the connection; beyond, it is closed.
const maxDiscard = 256 << 10

// lingerTime is how long a connection closed after a response waits for
// the client to close its side, so that unread request bytes do not turn
// the close into a reset that loses the response.
const lingerTime = 500 * time.Millisecond

// aLongTimeAgo is a passed deadline: setting it ends a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

type conn struct {
	s      *Server
	nc     net.Conn
	remote string
	cr     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	state  atomic.Int32
	// deadline: a read deadline may be set on nc (waiting for a head,
	// or the handler's); left in place for a request without a body, as
	// nothing reads nc then but the background read, which clears it.
	deadline atomic.Bool
	cur      atomic.Pointer[response] // the request whose handler runs
	keys     []string                 // scratch for writing a head in a stable order
	pend     [pendingMax]byte         // a response's body held before its head
	tls      *tls.ConnectionState     // of a TLS connection, for its requests
	scan     headScan                 // of the request head being read
	lastPOST bool                     // the last request was a POST
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tls = &st
	}
	c.cr.c = c
	c.cr.cond.L = &c.cr.mu
	c.br = bufio.NewReaderSize(&c.cr, readBufSize)
	c.bw = bufio.NewWriterSize(nc, writeBufSize)
	return c
}

// serve runs the connection's requests one after the other.
func (c *conn) serve() {
	defer c.s.forget(c)
	for first := true; ; first = false {
		c.cr.setLimit(int64(c.s.maxHeaderBytes()) + readBufSize)
		if !c.awaitRequest(first) {
			c.nc.Close()
			return
		}
		req, err := c.readRequest()
		if err != nil {
			c.refuse(err)
			return
		}
		c.cr.setLimit(-1)
		if req.Body != http.NoBody {
			c.clearDeadline()
		}
		w := newResponse(c, req)
		if isH2Preface(req) {
			w.closeAfter = true
		}
		if len(req.Header["Expect"]) > 0 {
			if !w.expect() {
				w.finish()
				c.closeAfterResponse()
				return
			}
		}
		if !c.run(w) {
			return
		}
		keep := w.finish()
		if err := c.bw.Flush(); err != nil || w.broken {
			c.nc.Close()
			return
		}
		if !keep || c.s.closing.Load() {
			c.closeAfterResponse()
			return
		}
		if !c.state.CompareAndSwap(stateActive, stateIdle) {
			c.nc.Close() // by Close
			return
		}
	}
}

// awaitRequest waits for a request's first byte and marks the
// connection active. A new connection waits within ReadHeaderTimeout, a
// kept one within IdleTimeout; then the head has ReadHeaderTimeout,
// unless it has come whole already.
func (c *conn) awaitRequest(first bool) bool {
	hd := c.s.ReadHeaderTimeout
	if c.br.Buffered() == 0 {
		d := c.s.idleTimeout()
		if first {
			d = hd
		}
		switch {
		case d > 0:
			c.nc.SetReadDeadline(time.Now().Add(d))
			c.deadline.Store(true)
		case c.deadline.Load():
			c.nc.SetReadDeadline(time.Time{})
			c.deadline.Store(false)
		}
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
		if first {
			hd = 0 // set above
		}
	}
	c.startHead()
	if hd > 0 && !c.scan.done {
		// The head has not come whole yet.
		c.nc.SetReadDeadline(time.Now().Add(hd))
		c.deadline.Store(true)
	}
	// Shutdown may have closed it while idle.
	return c.state.CompareAndSwap(stateIdle, stateActive)
}

// clearDeadline lifts a read deadline left from waiting for the head,
// before a request body is read: a body has no time limit here (the
// handler sets its own through http.ResponseController).
func (c *conn) clearDeadline() {
	if c.deadline.Load() {
		c.nc.SetReadDeadline(time.Time{})
		c.deadline.Store(false)
	}
}

// startHead begins a request head: it skips the CRLF that old clients
// send after a POST body (RFC 9112 section 2.2 lets a server), then
// scans what is buffered of the head. http.ReadRequest drops the Host
// fields once it has read them, so the scan counts them as the head goes
// by: first what is buffered, then what connReader reads; it also tells
// whether the head has come whole.
func (c *conn) startHead() {
	if c.lastPOST {
		b, _ := c.br.Peek(min(4, c.br.Buffered()))
		n := 0
		for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
			n++
		}
		c.br.Discard(n)
	}
	c.scan.reset()
	b, _ := c.br.Peek(c.br.Buffered())
	c.scan.feed(b)
}

// run calls the handler and reports whether the connection is still
// the server's (not hijacked, no panic).
func (c *conn) run(w *response) (ok bool) {
	defer func() {
		if ok {
			return
		}
		v := recover()
		if v != nil && v != http.ErrAbortHandler {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.log().Error("handler panicked", "remote", c.remote, "panic", v, "stack", string(buf))
		}
		w.ctx.cancel(errHandlerDone)
		if w.hijacked {
			return
		}
		// What was written goes out; the response stays cut, so the
		// client sees it was not complete.
		c.cr.abortPendingRead()
		c.bw.Flush()
		c.nc.Close()
	}()
	if w.req.RequestURI == "*" && w.req.Method == http.MethodOptions {
		// The server's own answer, as net/http's: no handler sees it.
		w.hdr["Content-Length"] = []string{"0"}
		w.WriteHeader(http.StatusOK)
		return true
	}
	c.s.Handler.ServeHTTP(w, w.req)
	if w.hijacked {
		return false
	}
	return true
}

// readRequest reads and checks a request head (begun by startHead).
func (c *conn) readRequest() (*http.Request, error) {
	c.cr.scanning(true)
	req, err := http.ReadRequest(c.br)
	c.cr.scanning(false)
	if err != nil {
		switch {
		case c.cr.hitLimit():
			return nil, errTooLarge
		case strings.HasPrefix(err.Error(), "unsupported transfer encoding"),
			strings.HasPrefix(err.Error(), "too many transfer encodings"):
			// net/http's error has no exported type.
			return nil, statusError{http.StatusNotImplemented, "unsupported transfer encoding"}
		}
		return nil, err
	}
	c.lastPOST = req.Method == http.MethodPost
	if req.ProtoMajor != 1 && !isH2Preface(req) {
		return nil, statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	host := req.Host
	if req.URL.Host != "" {
		// Absolute form: the Host field is checked, though not used.
		host = c.scan.hostValue()
	}
	switch {
	case req.ProtoAtLeast(1, 1) && c.scan.hosts == 0 && req.Method != http.MethodConnect && !isH2Preface(req):
		return nil, statusError{http.StatusBadRequest, "missing required Host header"}
	case c.scan.hosts > 1:
		return nil, statusError{http.StatusBadRequest, "too many Host headers"}
	case c.scan.hosts == 1 && !httpguts.ValidHostHeader(host):
		return nil, statusError{http.StatusBadRequest, "malformed Host header"}
	}
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, statusError{http.StatusBadRequest, "invalid header name"}
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, statusError{http.StatusBadRequest, "invalid header value"}
			}
		}
	}
	req.RemoteAddr = c.remote
	req.TLS = c.tls
	return req, nil
}

// isH2Preface: the start of HTTP/2 with prior knowledge. It goes to the
// handler, then the connection closes, as with net/http without h2c.
func isH2Preface(req *http.Request) bool {
	return req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*"
}

// headScan counts the Host fields of a request head from its raw bytes,
// fed in order, and keeps the first one's value.
type headScan struct {
	done   bool // the empty line that ends the head went by
	line   int  // 0: the request line
	col    int  // bytes of the current line so far
	onlyCR bool // the current line is "\r" so far
	match  bool // the current line starts as "host:" so far
	inHost bool // in the value of the first Host field
	hosts  int
	value  []byte
}

func (h *headScan) reset() {
	*h = headScan{value: h.value[:0]}
}

const hostPrefix = "host:"

func (h *headScan) feed(b []byte) {
	for _, ch := range b {
		if h.done {
			return
		}
		if ch == '\n' {
			if h.line > 0 && (h.col == 0 || h.onlyCR) {
				h.done = true
				return
			}
			h.line++
			h.col, h.onlyCR, h.match, h.inHost = 0, false, true, false
			continue
		}
		if h.inHost {
			h.value = append(h.value, ch)
		}
		if h.match && h.col < len(hostPrefix) {
			lc := ch
			if 'A' <= lc && lc <= 'Z' {
				lc += 'a' - 'A'
			}
			h.match = lc == hostPrefix[h.col]
			if h.match && h.col == len(hostPrefix)-1 {
				h.hosts++
				h.inHost = h.hosts == 1
			}
		}
		h.onlyCR = h.col == 0 && ch == '\r'
		h.col++
	}
}

// hostValue is the first Host field's value, trimmed.
func (h *headScan) hostValue() string {
	return strings.TrimSpace(string(h.value))
}

// statusError is a request refused with a status and a reason.
type statusError struct {
	code int
	text string
}

func (e statusError) Error() string { return strconv.Itoa(e.code) + " " + e.text }

var errTooLarge = errors.New("h1: request head too large")

// refuse answers a request that could not be read, then closes. A
// connection that closed or timed out between requests gets nothing.
func (c *conn) refuse(err error) {
	var se statusError
	switch {
	case errors.Is(err, errTooLarge):
		se = statusError{http.StatusRequestHeaderFieldsTooLarge, ""}
	case errors.As(err, &se):
	case quietReadError(err):
		c.nc.Close()
		return
	default:
		se = statusError{http.StatusBadRequest, ""}
	}
	body := strconv.Itoa(se.code) + " " + http.StatusText(se.code)
	if se.text != "" {
		body += ": " + se.text
	}
	c.bw.WriteString("HTTP/1.1 " + strconv.Itoa(se.code) + " " + http.StatusText(se.code) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	c.closeAfterResponse()
}

// quietReadError: the client left or went silent; nothing to answer.
func quietReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

// closeAfterResponse flushes, closes the sending side and gives the
// client a moment to read the response before the connection closes.
func (c *conn) closeAfterResponse() {
	c.state.Store(stateClosed)
	if c.bw.Flush() == nil {
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
			c.nc.SetReadDeadline(time.Now().Add(lingerTime))
			io.Copy(io.Discard, io.LimitReader(c.nc, maxDiscard))
		}
	}
	c.nc.Close()
}

// connReader reads the connection for the bufio.Reader: it bounds a
// request head, and it runs the background read that tells a waiting
// handler the client has left.
type connReader struct {
	c      *conn
	mu     sync.Mutex
	cond   sync.Cond
	remain int64 // bytes left before the head limit; <0: unlimited
	hit    bool  // the limit was reached
	scan   bool  // feed what is read to c.scan
	// The background read: one byte, kept for the next Read.
	inRead  bool
	aborted bool
	hasByte bool
	byteBuf [1]byte
}

// readFailed: a read of the connection failed while a handler runs (the
// client left, or its body stalled): the request is cancelled.
func (cr *connReader) readFailed() {
	if w := cr.c.cur.Load(); w != nil {
		w.ctx.cancel(context.Canceled)
	}
}

func (cr *connReader) setLimit(n int64) {
	cr.mu.Lock()
	cr.remain, cr.hit = n, false
	cr.mu.Unlock()
}

func (cr *connReader) scanning(on bool) {
	cr.mu.Lock()
	cr.scan = on
	cr.mu.Unlock()
}

func (cr *connReader) hitLimit() bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.hit
}

func (cr *connReader) Read(p []byte) (int, error) {
	cr.mu.Lock()
	for cr.inRead {
		// The handler reads again (a hijack, a late body read): the
		// background read gives way.
		cr.abortLocked()
	}
	if cr.remain == 0 {
		cr.hit = true
		cr.mu.Unlock()
		return 0, io.EOF
	}
	if len(p) == 0 {
		cr.mu.Unlock()
		return 0, nil
	}
	if cr.hasByte {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		if cr.remain > 0 {
			cr.remain--
		}
		if cr.scan {
			cr.c.scan.feed(p[:1])
		}
		cr.mu.Unlock()
		return 1, nil
	}
	if cr.remain > 0 && int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	cr.mu.Unlock()
	n, err := cr.c.nc.Read(p)
	cr.mu.Lock()
	if cr.remain > 0 {
		cr.remain -= int64(n)
	}
	if cr.scan {
		cr.c.scan.feed(p[:n])
	}
	cr.mu.Unlock()
	if err != nil {
		cr.readFailed()
	}
	return n, err
}

// startBackgroundRead starts reading one byte while a handler runs,
// unless a read is under way or bytes of a next request are buffered
// already (then the client is there).
func (cr *connReader) startBackgroundRead() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.inRead || cr.hasByte || cr.c.br.Buffered() > 0 {
		return
	}
	cr.inRead = true
	cr.c.nc.SetReadDeadline(time.Time{})
	cr.c.deadline.Store(false)
	go cr.backgroundRead()
}

func (cr *connReader) backgroundRead() {
	n, err := cr.c.nc.Read(cr.byteBuf[:])
	cr.mu.Lock()
	if n == 1 {
		cr.hasByte = true
	}
	aborted := cr.aborted
	cr.inRead, cr.aborted = false, false
	cr.cond.Broadcast()
	cr.mu.Unlock()
	if err != nil && !(aborted && isTimeout(err)) {
		cr.readFailed()
	}
}

// abortPendingRead stops a background read and waits for it.
func (cr *connReader) abortPendingRead() {
	cr.mu.Lock()
	for cr.inRead {
		cr.abortLocked()
	}
	cr.mu.Unlock()
}

func (cr *connReader) abortLocked() {
	cr.aborted = true
	cr.c.nc.SetReadDeadline(aLongTimeAgo)
	for cr.inRead {
		cr.cond.Wait()
	}
	cr.c.nc.SetReadDeadline(time.Time{})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
