package h1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// pendingMax is how much body a response holds before its head is sent:
// a handler that finishes within it gets a Content-Length, one that does
// not a chunked response.
const pendingMax = 2 << 10

// response is the http.ResponseWriter of one request; it also holds the
// request's context and body, so a request costs one allocation here.
type response struct {
	c   *conn
	req *http.Request
	hdr http.Header
	ctx reqCtx

	body reqBody

	status      int
	wroteHeader bool  // the status is set
	headSent    bool  // the head went to the connection's buffer
	chunked     bool  // the body is sent chunked
	length      int64 // the handler's Content-Length; -1: none
	written     int64 // body bytes the handler wrote
	closeAfter  bool  // the connection closes after this response
	hijacked    bool
	broken      bool // a write to the connection failed
	pending     []byte
	trailers    []string // declared in a Trailer header
}

func newResponse(c *conn, req *http.Request) *response {
	w := &response{c: c, hdr: make(http.Header), length: -1, closeAfter: req.Close}
	w.ctx.w = w
	if req.Body != nil && req.Body != http.NoBody {
		w.body.w = w
		w.body.inner = req.Body
		req.Body = &w.body
	}
	w.req = req.WithContext(&w.ctx)
	c.cur.Store(w)
	return w
}

// expect handles an Expect header; false: the request was refused
// (417).
func (w *response) expect() bool {
	if httpguts.HeaderValuesContainsToken(w.req.Header["Expect"], "100-continue") {
		if w.req.ProtoAtLeast(1, 1) && w.req.ContentLength != 0 && w.body.inner != nil {
			w.body.wantContinue = true
		}
		return true
	}
	w.closeAfter = true
	w.WriteHeader(http.StatusExpectationFailed)
	return false
}

func (w *response) Header() http.Header { return w.hdr }

func (w *response) WriteHeader(code int) {
	if w.hijacked {
		w.c.s.log().Warn("h1: WriteHeader on a hijacked connection", "remote", w.c.remote)
		return
	}
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("h1: invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInterim(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.hdr["Content-Length"]; len(cl) > 0 {
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err == nil && n >= 0 {
			w.length = n
		} else {
			w.c.s.log().Warn("h1: invalid Content-Length from the handler, dropped", "value", cl[0])
			delete(w.hdr, "Content-Length")
		}
	}
}

// writeInterim sends a 1xx response at once.
func (w *response) writeInterim(code int) {
	bw := w.c.bw
	if code == http.StatusContinue {
		if !w.body.takeContinue() {
			return
		}
	}
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code)
	keys, _ := w.sortedKeys()
	w.writeFields(bw, keys, true)
	bw.WriteString("\r\n")
	if bw.Flush() != nil {
		w.broken = true
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.req.Method == http.MethodHead {
		// No body; a head with no length once more than pendingMax
		// was written, as for any other method.
		if !w.headSent && w.length < 0 && w.written > pendingMax {
			w.commitHead(false)
		}
		return len(p), nil
	}
	if !w.headSent {
		if w.length < 0 && len(w.pending)+len(p) <= pendingMax {
			if w.pending == nil {
				w.pending = w.c.pend[:0]
			}
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commitHead(false)
	}
	return w.writeBody(p)
}

func (w *response) WriteString(s string) (int, error) {
	// Through Write: a string up to pendingMax is copied once either
	// way, and the rules stay in one place.
	return w.Write([]byte(s))
}

func (w *response) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.broken = true
	}
	return n, err
}

// Flush sends what was written, the head first.
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.commitHead(false)
	}
	err := w.c.bw.Flush()
	if err != nil {
		w.broken = true
	}
	return err
}

// Hijack hands the connection to the handler, with its buffers.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	c := w.c
	c.cr.abortPendingRead()
	if w.headSent {
		c.bw.Flush()
	}
	w.hijacked = true
	c.state.Store(stateHijacked)
	c.s.forget(c) // Shutdown does not wait for it, as net/http's
	c.cur.Store(nil)
	c.nc.SetDeadline(time.Time{})
	return c.nc, bufio.NewReadWriter(c.br, c.bw), nil
}

// SetReadDeadline and SetWriteDeadline are for http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.deadline.Store(!t.IsZero()) // so the next request's wait replaces it
	return w.c.nc.SetReadDeadline(t)
}
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// commitHead writes the head to the connection's buffer, then what body
// was held. final: the handler has returned, so a held body's length is
// known.
func (w *response) commitHead(final bool) {
	w.headSent = true
	w.body.noContinue()
	w.discardBody()
	head := w.req.Method == http.MethodHead
	keys, trailers := w.sortedKeys()
	if bodyAllowed(w.status) && w.length < 0 {
		switch {
		case final && !trailers && (!head || w.written > 0):
			w.length = w.written
		case head:
		case w.req.ProtoAtLeast(1, 1):
			w.chunked = true
		default:
			// HTTP/1.0 cannot be chunked: the close ends the body.
			w.closeAfter = true
		}
	}
	if w.c.s.closing.Load() || httpguts.HeaderValuesContainsToken(w.hdr["Connection"], "close") {
		w.closeAfter = true
	}
	if w.chunked {
		for _, v := range w.hdr["Trailer"] {
			for k := range strings.SplitSeq(v, ",") {
				if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" {
					w.trailers = append(w.trailers, k)
				}
			}
		}
	}

	bw := w.c.bw
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), w.status)
	w.writeFields(bw, keys, false)
	if _, ok := w.hdr["Date"]; !ok {
		bw.WriteString(dateField())
	}
	if bodyAllowed(w.status) {
		switch {
		case w.chunked:
			bw.WriteString("Transfer-Encoding: chunked\r\n")
		case w.length >= 0:
			bw.WriteString("Content-Length: ")
			bw.WriteString(strconv.FormatInt(w.length, 10))
			bw.WriteString("\r\n")
		}
	}
	switch is11 := w.req.ProtoAtLeast(1, 1); {
	case w.closeAfter && is11:
		bw.WriteString("Connection: close\r\n")
	case !w.closeAfter && !is11:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
	if len(w.pending) > 0 {
		p := w.pending
		w.pending = nil
		w.writeBody(p)
	}
}

// sortedKeys lists the handler's header fields in a stable order (in
// the connection's scratch slice), and says whether it declared trailers
// (a Trailer field, or a field named with http.TrailerPrefix): then the
// body goes chunked.
func (w *response) sortedKeys() (keys []string, trailers bool) {
	keys = w.c.keys[:0]
	for k := range w.hdr {
		keys = append(keys, k)
		trailers = trailers || (k == "Trailer" && len(w.hdr[k]) > 0) || strings.HasPrefix(k, http.TrailerPrefix)
	}
	slices.Sort(keys)
	w.c.keys = keys
	return keys, trailers
}

// writeFields writes the fields named by keys (from sortedKeys), leaving
// out those the server writes itself and any a status forbids. A field
// with an invalid name is dropped, line breaks in a value become spaces
// (no response splitting).
func (w *response) writeFields(bw *bufio.Writer, keys []string, interim bool) {
	for _, k := range keys {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			// Framing is the server's.
			continue
		case "Content-Type":
			if w.status == http.StatusNotModified && !interim {
				continue
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range w.hdr[k] {
			writeField(bw, k, v)
		}
	}
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	v = strings.TrimSpace(v)
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// finish completes the response once the handler has returned and
// reports whether the connection may serve another request.
func (w *response) finish() bool {
	c := w.c
	c.cur.Store(nil)
	c.cr.abortPendingRead()
	w.ctx.cancel(errHandlerDone)
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.commitHead(true)
	}
	if w.chunked {
		w.writeTrailers()
	}
	if w.length >= 0 && w.written != w.length && bodyAllowed(w.status) && w.req.Method != http.MethodHead {
		// A short body: the client waits for the rest; the connection
		// cannot go on.
		w.closeAfter = true
	}
	return !w.closeAfter && !w.broken
}

// writeTrailers ends a chunked body with the trailer fields: those set
// with http.TrailerPrefix and those declared in a Trailer header.
func (w *response) writeTrailers() {
	bw := w.c.bw
	bw.WriteString("0\r\n")
	for k, vs := range w.hdr {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidHeaderFieldName(name) {
			for _, v := range vs {
				writeField(bw, name, v)
			}
		}
	}
	for _, k := range w.trailers {
		if httpguts.ValidHeaderFieldName(k) {
			for _, v := range w.hdr[k] {
				writeField(bw, k, v)
			}
		}
	}
	bw.WriteString("\r\n")
}

// discardBody reads what the handler left of the request body, up to
// maxDiscard, so the connection can serve the next request; a larger
// rest, a body the client was not asked to send (100-continue), or one
// that failed closes the connection instead.
func (w *response) discardBody() {
	b := &w.body
	if b.inner == nil || w.closeAfter {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.sawEOF:
		return
	case b.wantContinue && !b.sentContinue, b.closed, b.err != nil:
		w.closeAfter = true
		return
	}
	_, err := io.CopyN(io.Discard, b.inner, maxDiscard+1)
	b.finished.Store(true)
	if err == io.EOF {
		b.sawEOF = true
		return
	}
	w.closeAfter = true
}

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func writeStatusLine(bw *bufio.Writer, is11 bool, code int) {
	if is11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	var b [3]byte
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(text)
	bw.WriteString("\r\n")
}

// dateField is "Date: <now>\r\n", formatted once a second.
func dateField() string {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.field
	}
	d := &cachedDate{sec: sec, field: "Date: " + now.UTC().Format(http.TimeFormat) + "\r\n"}
	dateCache.Store(d)
	return d.field
}

type cachedDate struct {
	sec   int64
	field string
}

var dateCache atomic.Pointer[cachedDate]

// reqBody is a request body as the handler sees it: it sends 100
// Continue on the first read when the client asked for it, remembers
// how the body ended (for discardBody and the client-gone watch), and
// Close does not read the rest (discardBody decides).
type reqBody struct {
	w     *response
	inner io.ReadCloser

	mu           sync.Mutex
	wantContinue bool // set before the handler runs
	sentContinue bool
	contMu       sync.Mutex // orders a 100 Continue with the head
	headGone     bool       // under contMu: no 100 Continue any more
	sawEOF       bool
	closed       bool
	err          error
	// finished: sawEOF, closed or err, readable without mu (which a
	// blocked Read holds).
	finished atomic.Bool
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.sawEOF:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	}
	if b.wantContinue && !b.sentContinue {
		b.sendContinue()
	}
	n, err := b.inner.Read(p)
	switch {
	case err == io.EOF:
		b.sawEOF = true
		b.finished.Store(true)
		if b.w.ctx.watching.Load() {
			b.w.c.cr.startBackgroundRead()
		}
	case err != nil:
		b.err = err
		b.finished.Store(true)
	}
	return n, err
}

// sendContinue writes 100 Continue straight to the connection, unless
// the response's head has gone out.
func (b *reqBody) sendContinue() {
	b.sentContinue = true
	b.contMu.Lock()
	defer b.contMu.Unlock()
	if b.headGone {
		return
	}
	if _, err := io.WriteString(b.w.c.nc, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
		b.err = err
	}
}

// takeContinue: the handler sends 100 Continue itself; false if it was
// sent already or may not be any more.
func (b *reqBody) takeContinue() bool {
	if !b.wantContinue {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.contMu.Lock()
	defer b.contMu.Unlock()
	if b.sentContinue || b.headGone {
		return false
	}
	b.sentContinue = true
	return true
}

// noContinue: the head is going out; no 100 Continue after it.
func (b *reqBody) noContinue() {
	if !b.wantContinue {
		return
	}
	b.contMu.Lock()
	b.headGone = true
	b.contMu.Unlock()
}

func (b *reqBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.finished.Store(true)
	b.mu.Unlock()
	return nil
}
