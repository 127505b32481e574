package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// request is one kind of request of a load mix.
type request struct {
	method  string
	path    string
	wantLen int // expected body length, -1 when unknown (POST: the echo)
}

// parseRequest reads "GET /bytes/1024" or "POST /echo". A POST carries a
// small unique body and expects it back (the backend's /echo), so a proxy
// that mixes up bodies is caught. GET /bytes/<n> expects n bytes.
func parseRequest(s string) (request, error) {
	method, path, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || (method != http.MethodGet && method != http.MethodPost) || !strings.HasPrefix(path, "/") {
		return request{}, fmt.Errorf("%w: request %q: want \"GET /path\" or \"POST /path\"", errUsage, s)
	}
	r := request{method: method, path: path, wantLen: -1}
	if n, err := strconv.Atoi(strings.TrimPrefix(path, "/bytes/")); err == nil && strings.HasPrefix(path, "/bytes/") {
		r.wantLen = n
	}
	return r, nil
}

// idempotent requests are retried on a fresh connection when a reused one
// fails before the first response byte, as net/http's Transport does.
func (r request) idempotent() bool { return r.method == http.MethodGet }

// countConn counts the bytes read and written since the last reset, to
// tell "nothing written" and "no response byte" apart.
type countConn struct {
	net.Conn
	r, w int
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r += n
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w += n
	return n, err
}

// httpConn is one keep-alive HTTP/1.1 connection, used by one worker at a
// time. It sends prebuilt request bytes and parses the answer with
// net/http's ReadResponse: cheaper than http.Transport (no goroutine
// hand-offs), so the generator leaves more of the machine to what it
// measures, and it follows the Transport's retry rules (see do).
type httpConn struct {
	dial    func(ctx context.Context) (net.Conn, error)
	host    string
	timeout time.Duration

	conn    *countConn
	br      *bufio.Reader
	reqBuf  []byte
	bodyBuf bytes.Buffer

	idleSince time.Time // when the last answer was read

	dials, retries int
}

// peekAfterIdle: a connection idle at least this long is checked before
// reuse. One used more often than that (high rates) skips the check, a
// syscall per request; a server rarely closes a connection that busy, and
// a GET that meets one anyway is sent again (see do).
const peekAfterIdle = 10 * time.Millisecond

func (c *httpConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// do sends one request and reads its whole answer. A fresh connection is
// dialled when there is none, or when the kept one was closed by the
// server while idle. A request that fails on a reused connection is sent
// again once on a new one when nothing of it was written, or, for a GET,
// when no byte of the answer came back: the rules of net/http's Transport,
// which is what most clients behave like.
func (c *httpConn) do(ctx context.Context, req request, seq int) error {
	var body string
	if req.method == http.MethodPost {
		body = "ruche-bench " + strconv.Itoa(seq) + "\n"
	}
	for attempt := 0; ; attempt++ {
		if c.conn != nil && time.Since(c.idleSince) >= peekAfterIdle && !c.idleAlive() {
			c.close()
		}
		reused := c.conn != nil
		if !reused {
			nc, err := c.dial(ctx)
			if err != nil {
				return fmt.Errorf("dial: %w", err)
			}
			c.dials++
			c.conn = &countConn{Conn: nc}
			if c.br == nil {
				c.br = bufio.NewReaderSize(c.conn, 16<<10)
			} else {
				c.br.Reset(c.conn)
			}
		}
		keep, err := c.exchange(req, body)
		if err == nil || errors.Is(err, errStatus) || errors.Is(err, errBody) {
			if !keep {
				c.close()
			}
			c.idleSince = time.Now()
			return err
		}
		retry := reused && attempt == 0 && (c.conn.w == 0 || (c.conn.r == 0 && req.idempotent()))
		c.close()
		if !retry {
			return err
		}
		c.retries++
	}
}

// exchange writes the request and reads the answer on c.conn. keep says
// whether the connection can serve another request.
func (c *httpConn) exchange(req request, body string) (keep bool, err error) {
	c.conn.r, c.conn.w = 0, 0
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	c.reqBuf = appendRequest(c.reqBuf[:0], req, c.host, body)
	if _, err := c.conn.Write(c.reqBuf); err != nil {
		return false, fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return false, fmt.Errorf("read response: %w", err)
	}
	c.bodyBuf.Reset()
	_, err = c.bodyBuf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, fmt.Errorf("read body: %w", err)
	}
	keep = !resp.Close
	switch {
	case resp.StatusCode != http.StatusOK:
		return keep, fmt.Errorf("%w %d", errStatus, resp.StatusCode)
	case req.method == http.MethodPost && c.bodyBuf.String() != body:
		return keep, fmt.Errorf("%w: the echo differs from the request body", errBody)
	case req.wantLen >= 0 && c.bodyBuf.Len() != req.wantLen:
		return keep, fmt.Errorf("%w: %d bytes, want %d", errBody, c.bodyBuf.Len(), req.wantLen)
	}
	return keep, nil
}

func appendRequest(b []byte, req request, host, body string) []byte {
	b = append(b, req.method...)
	b = append(b, ' ')
	b = append(b, req.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nUser-Agent: ruche-bench\r\n"...)
	if req.method == http.MethodPost {
		b = append(b, "Content-Type: text/plain\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// idleAlive tells whether the kept connection is still open: the server
// may have closed it while it was idle (its keep-alive timeout, or a
// replica shutting down). net/http's Transport learns this from its
// background reader; here a non-blocking peek asks the kernel. On a
// connection that is not a socket (tests' net.Pipe) it answers true.
func (c *httpConn) idleAlive() bool {
	if c.br.Buffered() > 0 {
		return false // bytes nobody asked for: the stream is out of step
	}
	sc, ok := c.conn.Conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	return peekAlive(rc)
}

// errKind is a short, stable description of a failed request for the
// report: "status 502", "read response: EOF", "dial: connection refused".
func errKind(err error) string {
	var status string
	switch {
	case errors.Is(err, errStatus), errors.Is(err, errBody):
		return sanitize(err.Error())
	case errors.Is(err, os.ErrDeadlineExceeded):
		status = "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		status = "connection reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		status = "connection refused"
	case errors.Is(err, syscall.EPIPE):
		status = "broken pipe"
	case errors.Is(err, io.ErrUnexpectedEOF):
		status = "unexpected EOF"
	case errors.Is(err, io.EOF):
		status = "EOF"
	default:
		return sanitize(err.Error())
	}
	phase, _, _ := strings.Cut(err.Error(), ":")
	return phase + ": " + status
}

// sanitize keeps a kind within one result field.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == ';' || r == '=' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
