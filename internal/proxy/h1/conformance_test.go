package h1

// A differential conformance test: the same raw bytes go to net/http's
// server and to the candidate server, each with the same handler, on a
// fresh loopback connection per case; what comes back (split into
// responses), what the handler saw and whether the server closed the
// connection must agree. Allowed differences are listed per case, with
// a comment, in the table; differences in the text of error bodies are
// allowed everywhere and logged.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveFunc serves ln with h until stop is called; stop closes every
// connection and returns once the server has stopped.
type serveFunc func(ln net.Listener, h http.Handler, hdrTimeout time.Duration, maxHeader int) (stop func())

// candidate is the server compared with net/http.
var candidate serveFunc = serveH1

func serveH1(ln net.Listener, h http.Handler, hdrTimeout time.Duration, maxHeader int) func() {
	s := &Server{Handler: h, ReadHeaderTimeout: hdrTimeout, MaxHeaderBytes: maxHeader,
		ErrorLog: slog.New(slog.DiscardHandler)}
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ln) }()
	return func() { s.Close(); <-done }
}

// serveNetHTTP is the reference: net/http's server configured as h1's
// Server would be. IdleTimeout is set to hdrTimeout because that is h1's
// default (IdleTimeout 0 means ReadHeaderTimeout); net/http's own default
// (IdleTimeout and ReadTimeout 0) keeps idle connections forever.
func serveNetHTTP(ln net.Listener, h http.Handler, hdrTimeout time.Duration, maxHeader int) func() {
	return startNetHTTP(ln, newNetHTTP(h, hdrTimeout, maxHeader))
}

func newNetHTTP(h http.Handler, hdrTimeout time.Duration, maxHeader int) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: hdrTimeout,
		IdleTimeout:       hdrTimeout,
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
}

func startNetHTTP(ln net.Listener, srv *http.Server) func() {
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	return func() { srv.Close(); <-done }
}

const (
	// confMaxHeader is MaxHeaderBytes for both servers. net/http reads up
	// to MaxHeaderBytes+4096 bytes of head before answering 431.
	confMaxHeader = 4096
	// confHdrTimeout is long enough that no case of TestConformance
	// meets it.
	confHdrTimeout = 5 * time.Second
	// confIdle: a connection silent this long (after the last byte either
	// way) is taken as kept open by the server.
	confIdle = 300 * time.Millisecond
)

// seen is what a handler saw of a request.
type seen struct {
	Method           string
	RequestURI       string
	Path             string
	Host             string
	Proto            string
	Header           http.Header // without Date
	ContentLength    int64
	TransferEncoding []string
	Close            bool
	Body             string      `json:",omitempty"`
	BodyErr          string      `json:",omitempty"`
	Trailer          http.Header `json:",omitempty"`
}

func observe(r *http.Request) seen {
	h := r.Header.Clone()
	h.Del("Date")
	return seen{
		Method:           r.Method,
		RequestURI:       r.RequestURI,
		Path:             r.URL.Path,
		Host:             r.Host,
		Proto:            r.Proto,
		Header:           h,
		ContentLength:    r.ContentLength,
		TransferEncoding: r.TransferEncoding,
		Close:            r.Close,
	}
}

// recorder keeps, in order, what one server's handler saw.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (rc *recorder) add(s seen) {
	b, _ := json.Marshal(s)
	rc.mu.Lock()
	rc.seen = append(rc.seen, string(b))
	rc.mu.Unlock()
}

func (rc *recorder) all() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.seen)
}

// A handlerFunc builds a case's handler around its server's recorder.
type handlerFunc func(rc *recorder) http.Handler

// echo reads the body and answers 200 with what it saw, as JSON.
func echo(rc *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		s := observe(r)
		s.Body = string(body)
		if err != nil {
			s.BodyErr = err.Error()
		}
		s.Trailer = r.Trailer
		rc.add(s)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	})
}

// noRead does not read the body and answers "ok" (Content-Type sniffed).
func noRead(rc *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.add(observe(r))
		io.WriteString(w, "ok")
	})
}

// noBody writes nothing at all.
func noBody(rc *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.add(observe(r))
	})
}

// status answers code and tries to write a body too (refused for 204
// and 304).
func status(code int) handlerFunc {
	return func(rc *recorder) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc.add(observe(r))
			w.WriteHeader(code)
			io.WriteString(w, "body")
		})
	}
}

// large writes 64 KiB without Content-Length: chunked on HTTP/1.1.
func large(rc *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.add(observe(r))
		w.Header().Set("Content-Type", "text/plain")
		piece := strings.Repeat("0123456789abcdef", 256)
		for range 16 {
			io.WriteString(w, piece)
		}
	})
}

// withLength sets Content-Length itself.
func withLength(rc *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.add(observe(r))
		w.Header().Set("Content-Length", "11")
		io.WriteString(w, "hello world")
	})
}

// flusher flushes between two writes.
func flusher(rc *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.add(observe(r))
		io.WriteString(w, "first,")
		w.(http.Flusher).Flush()
		io.WriteString(w, "second")
	})
}

// hijacker takes the connection and writes its own response.
func hijacker(rc *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.add(observe(r))
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Hijacked: yes\r\n\r\nhijacked")
		brw.Flush()
	})
}

// panicker panics before writing anything.
func panicker(rc *recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.add(observe(r))
		panic("conformance test: handler panics")
	})
}

// confCase is one row of the corpus.
type confCase struct {
	name    string
	handler handlerFunc // nil: echo
	raw     string      // sent at once
	// rest, when set, is sent once a whole response head has come back
	// (or after 1 s): a body after "100 Continue".
	rest string
	// halfClose ends the client's side (FIN) after sending.
	halfClose bool
	// methods of the requests in order, for splitting the responses
	// (the last repeats); nil: GET.
	methods []string
	// allow lists differences that are accepted for this case, by key
	// (see diff.key); each needs a comment.
	allow []string
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n" }

var (
	oneMiB = strings.Repeat("x", 1<<20)
	// over is a head field larger than net/http's MaxHeaderBytes+4096.
	over = "X-Big: " + strings.Repeat("b", 3*confMaxHeader) + "\r\n"
)

// confCases is the corpus. No row allows a difference yet (the
// candidate is net/http itself); a row that needs one names it, with the
// reason, e.g.
//
//	// h1 does not send X-Content-Type-Options on its 400s: harmless.
//	{name: "...", raw: ..., allow: []string{"header X-Content-Type-Options"}},
//
// Every server's reply is logged ("net/http: ..."), so -v shows what the
// reference does for each row.
var confCases = []confCase{
	{name: "simple GET", raw: get("/")},
	{name: "pipelined GETs", raw: get("/1") + get("/2") + get("/3")},
	{name: "HTTP/1.0 without keep-alive", raw: "GET / HTTP/1.0\r\n\r\n" + get("/never")},
	{name: "HTTP/1.0 keep-alive then without", raw: "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + "GET /2 HTTP/1.0\r\n\r\n" + get("/never")},
	{name: "HTTP/1.0 keep-alive with a chunk-sized body", handler: large, raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get("/never")},
	{name: "HTTP/1.1 Connection: close", raw: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + get("/never")},
	{name: "POST with Content-Length", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + get("/after")},
	{name: "POST chunked", raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" + get("/after")},
	{name: "POST chunked with trailer", raw: "POST /p HTTP/1.1\r\nHost: a\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: v\r\n\r\n" + get("/after")},
	{name: "POST empty body", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" + get("/after")},

	// Request smuggling vectors.
	{name: "Content-Length and Transfer-Encoding", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get("/after")},
	{name: "two different Content-Length", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" + get("/after")},
	{name: "two identical Content-Length", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" + get("/after")},
	{name: "Content-Length +5", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello" + get("/after")},
	{name: "Content-Length 5, 5", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello" + get("/after")},
	{name: "Content-Length negative", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n" + get("/after")},
	{name: "Transfer-Encoding chunked, identity", raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get("/after")},
	{name: "Transfer-Encoding gzip, chunked", raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get("/after")},
	{name: "Transfer-Encoding xchunked", raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get("/after")},
	{name: "two Transfer-Encoding chunked", raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get("/after")},
	// net/http ignores Transfer-Encoding on HTTP/1.0 and frames by
	// Content-Length: the rest of the chunked body is a bad second request.
	{name: "Transfer-Encoding chunked on HTTP/1.0", raw: "POST /p HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get("/after")},
	{name: "chunk size with extension", raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n" + get("/after")},
	{name: "chunk size hex overflow", raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n" + get("/after")},
	{name: "chunk size 0x5", raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" + get("/after")},
	// net/http: the handler sees the body error; 200, then close.
	{name: "chunked body cut short", halfClose: true, raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"},

	// Malformed heads.
	{name: "space before colon", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Foo : bar\r\n\r\n" + get("/after")},
	{name: "obs-fold", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Foo: bar\r\n baz\r\n\r\n" + get("/after")},
	{name: "obs-fold on the first field", raw: "GET / HTTP/1.1\r\n X-Foo: bar\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "NUL in header value", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Foo: a\x00b\r\n\r\n" + get("/after")},
	{name: "bare CR in header value", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Foo: a\rb\r\n\r\n" + get("/after")},
	{name: "bare LF line endings", raw: "GET / HTTP/1.1\nHost: a\nX-Foo: bar\n\n" + get("/after")},
	{name: "invalid header name", raw: "GET / HTTP/1.1\r\nHost: a\r\nX(Foo): bar\r\n\r\n" + get("/after")},
	{name: "header without colon", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Foo\r\n\r\n" + get("/after")},
	{name: "missing Host on HTTP/1.1", raw: "GET / HTTP/1.1\r\n\r\n" + get("/after")},
	{name: "empty Host on HTTP/1.1", raw: "GET / HTTP/1.1\r\nHost:\r\n\r\n" + get("/after")},
	{name: "missing Host on HTTP/1.0", raw: "GET / HTTP/1.0\r\n\r\n"},
	{name: "two Host headers", raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + get("/after")},
	{name: "Host a b", raw: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n" + get("/after")},
	{name: "Host with NUL", raw: "GET / HTTP/1.1\r\nHost: exa\x00mple\r\n\r\n" + get("/after")},
	{name: "Host with port and IPv6", raw: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"},
	{name: "absolute-form URI with another Host", raw: "GET http://b/x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n" + get("/after")},
	// net/http answers OPTIONS * itself (200, Content-Length 0); the
	// handler never sees it.
	{name: "OPTIONS *", raw: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "OPTIONS * with body", raw: "OPTIONS * HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi" + get("/after")},
	{name: "CONNECT", raw: "CONNECT b:443 HTTP/1.1\r\nHost: b:443\r\n\r\n", methods: []string{"CONNECT"}},
	{name: "CONNECT without Host", raw: "CONNECT b:443 HTTP/1.1\r\n\r\n", methods: []string{"CONNECT"}},
	{name: "HTTP/2.0", raw: "GET / HTTP/2.0\r\nHost: a\r\n\r\n" + get("/after")},
	// net/http passes PRI * HTTP/2.0 to the handler (for h2c upgrades)
	// and closes after the response.
	{name: "HTTP/2 prior-knowledge preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	{name: "HTTP/0.9 version", raw: "GET / HTTP/0.9\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "HTTP/0.9 simple request", raw: "GET /\r\n\r\n"},
	{name: "HTTP/1.2", raw: "GET / HTTP/1.2\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "version HTTP/1.x", raw: "GET / HTTP/1.x\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "version HTTP/01.1", raw: "GET / HTTP/01.1\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "version FOO", raw: "GET / FOO\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "version lowercase http/1.1", raw: "GET / http/1.1\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "space in request target", raw: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "lowercase method", raw: "get / HTTP/1.1\r\nHost: a\r\n\r\n" + get("/after")},
	{name: "invalid method", raw: "G(T / HTTP/1.1\r\nHost: a\r\n\r\n" + get("/after")},
	// net/http reads up to MaxHeaderBytes+4096 bytes of head: these 6 KiB
	// pass with MaxHeaderBytes 4096.
	{name: "request line 6 KiB", raw: get("/" + strings.Repeat("a", 6<<10))},
	{name: "request line 16 KiB", raw: get("/" + strings.Repeat("a", 16<<10))},
	{name: "headers 6 KiB", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 6<<10) + "\r\n\r\n" + get("/after")},
	{name: "headers over MaxHeaderBytes", raw: "GET / HTTP/1.1\r\nHost: a\r\n" + over + "\r\n" + get("/after")},

	// Expect.
	{name: "Expect 100-continue, body after 100", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", rest: "hello" + get("/after")},
	{name: "Expect 100-continue, body at once", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello" + get("/after")},
	{name: "Expect 100-continue, handler ignores body", handler: noRead, raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", rest: "hello" + get("/after")},
	{name: "Expect 100-continue without body", raw: "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n" + get("/after")},
	{name: "Expect 100-continue on HTTP/1.0", raw: "POST /p HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello" + get("/after")},
	{name: "Expect 100-CONTINUE", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-CONTINUE\r\n\r\n", rest: "hello" + get("/after")},
	{name: "Expect something-else", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: something-else\r\n\r\nhello" + get("/after")},

	// Unread bodies.
	{name: "unread 10-byte body then pipelined GET", handler: noRead, raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789" + get("/after")},
	{name: "unread chunked body then pipelined GET", handler: noRead, raw: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get("/after")},
	{name: "unread 1 MiB body", handler: noRead, raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n" + oneMiB + get("/after")},

	// Responses.
	{name: "HEAD", raw: "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + get("/after"), methods: []string{"HEAD", "GET"}},
	{name: "HEAD of a large body", handler: large, raw: "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + get("/after"), methods: []string{"HEAD", "GET"}},
	{name: "HEAD with Content-Length set", handler: withLength, raw: "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + get("/after"), methods: []string{"HEAD", "GET"}},
	{name: "handler writes no body", handler: noBody, raw: get("/1") + get("/2")},
	{name: "204", handler: status(http.StatusNoContent), raw: get("/1") + get("/2")},
	{name: "304", handler: status(http.StatusNotModified), raw: get("/1") + get("/2")},
	{name: "418 with a body", handler: status(http.StatusTeapot), raw: get("/1") + get("/2")},
	{name: "large body chunked", handler: large, raw: get("/1") + get("/2")},
	{name: "large body on HTTP/1.0", handler: large, raw: "GET / HTTP/1.0\r\n\r\n"},
	{name: "handler sets Content-Length", handler: withLength, raw: get("/1") + get("/2")},
	{name: "handler flushes", handler: flusher, raw: get("/1") + get("/2")},
	{name: "handler flushes on HTTP/1.0", handler: flusher, raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get("/never")},
	{name: "handler hijacks", handler: hijacker, raw: get("/1") + get("/2")},
	{name: "handler panics", handler: panicker, raw: get("/1") + get("/2")},

	// Connection edges.
	// net/http skips CR/LF before a request only after a POST: on a fresh
	// connection the empty line is a malformed request (400).
	{name: "empty line before request", raw: "\r\n" + get("/")},
	{name: "empty line after a POST", raw: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\r\n" + get("/after")},
	// Once the request line is in, net/http answers an unexpected EOF in
	// the head with 400 (the client only half-closed, so it can read it).
	{name: "abrupt close mid-head", halfClose: true, raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Fo"},
	{name: "close right after a request", halfClose: true, raw: get("/")},
}

func TestConformance(t *testing.T) {
	// The exchanges wait on the network, not on the CPU: all run at once
	// (t.Parallel would run only GOMAXPROCS at a time), then each case
	// reports in its subtest.
	got := make([][2]observed, len(confCases))
	var wg sync.WaitGroup
	for i, c := range confCases {
		h := c.handler
		if h == nil {
			h = echo
		}
		wg.Go(func() {
			got[i][0], got[i][1] = pair(serveNetHTTP, candidate, func(serve serveFunc) observed {
				return exchange(serve, h, confHdrTimeout, confIdle, c.methods, sendCase(c))
			})
		})
	}
	wg.Wait()
	for i, c := range confCases {
		t.Run(c.name, func(t *testing.T) {
			ref, cand := got[i][0], got[i][1]
			logRef(t, ref, cand)
			report(t, compare(ref, cand), c.allow)
		})
	}
}

// TestConformanceTimeouts: with ReadHeaderTimeout 200 ms, a client that
// stops (or trickles) in the middle of a head, or stays idle after a
// request, has its connection closed within about 1 s by both servers.
func TestConformanceTimeouts(t *testing.T) {
	const hdrTimeout = 200 * time.Millisecond
	cases := []confCase{
		// net/http answers 400 when the timeout cuts a head after its
		// request line, and nothing when nothing came.
		{name: "half a head", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Fo"},
		{name: "nothing sent", raw: ""},
		{name: "idle after a request", raw: get("/")},
		{name: "half a head after a request", raw: get("/") + "GET /2 HTTP/1.1\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// The idle wait is longer than the 1 s allowed, so that a
			// connection kept open is seen as such.
			ref, cand := both(t, func(serve serveFunc) observed {
				return exchange(serve, echo, hdrTimeout, 1500*time.Millisecond, nil, sendCase(c))
			})
			closedWithin(t, time.Second, ref, cand)
			report(t, compare(ref, cand), c.allow)
		})
	}
	t.Run("trickled head", func(t *testing.T) {
		t.Parallel()
		// One byte every 50 ms: the header timeout does not restart
		// with each byte.
		raw := "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("s", 40) + "\r\n\r\n"
		ref, cand := both(t, func(serve serveFunc) observed {
			return exchange(serve, echo, hdrTimeout, confIdle, nil, sendTrickle(raw))
		})
		closedWithin(t, time.Second, ref, cand)
		report(t, compare(ref, cand), nil)
	})
}

// both runs one exchange with net/http and one with the candidate, at
// the same time, and logs what net/http did.
func both(t *testing.T, run func(serve serveFunc) observed) (ref, cand observed) {
	t.Helper()
	ref, cand = pair(serveNetHTTP, candidate, run)
	logRef(t, ref, cand)
	return ref, cand
}

// logRef stops the test if an exchange could not be made, and logs what
// net/http did.
func logRef(t *testing.T, ref, cand observed) {
	t.Helper()
	if ref.err != nil || cand.err != nil {
		t.Fatalf("exchange: net/http %v, candidate %v", ref.err, cand.err)
	}
	t.Logf("%s: net/http: %s", t.Name(), ref.summary())
}

// pair runs run with a and with b at the same time.
func pair(a, b serveFunc, run func(serve serveFunc) observed) (oa, ob observed) {
	var wg sync.WaitGroup
	wg.Go(func() { oa = run(a) })
	wg.Go(func() { ob = run(b) })
	wg.Wait()
	return oa, ob
}

// closedWithin fails unless both servers closed the connection within d.
func closedWithin(t *testing.T, d time.Duration, ref, cand observed) {
	t.Helper()
	for who, o := range map[string]observed{"net/http": ref, "candidate": cand} {
		if !o.closed {
			t.Errorf("%s kept the connection open", who)
		} else if o.closedAfter > d {
			t.Errorf("%s closed the connection after %v, want within %v", who, o.closedAfter, d)
		}
	}
}

// observed is what a client saw of one server in one case.
type observed struct {
	raw         []byte
	early       []seenResponse // responses complete before rest was sent
	resps       []seenResponse
	trailing    string // what did not parse as responses, and why
	closed      bool   // the server closed (or reset) the connection
	closedAfter time.Duration
	seen        []string // what the handler saw, in order
	err         error    // the exchange could not be made
}

// response is one parsed response, Date left out.
type seenResponse struct {
	Status           int
	Proto            string
	Header           http.Header
	TransferEncoding []string
	ContentLength    int64
	Close            bool
	Body             string
	BodyErr          string
}

func (o observed) summary() string {
	var b strings.Builder
	for i, r := range o.early {
		if i == 0 {
			b.WriteString("before the rest:")
		}
		fmt.Fprintf(&b, " %d", r.Status)
	}
	if len(o.early) > 0 {
		b.WriteString("; ")
	}
	b.WriteString("responses:")
	for _, r := range o.resps {
		fmt.Fprintf(&b, " %d", r.Status)
		if r.Status >= 400 && len(r.Body) < 100 {
			fmt.Fprintf(&b, " %q", r.Body)
		}
	}
	if len(o.resps) == 0 {
		b.WriteString(" none")
	}
	if o.trailing != "" {
		fmt.Fprintf(&b, "; trailing %.80q", o.trailing)
	}
	fmt.Fprintf(&b, "; handler calls %d; closed %v", len(o.seen), o.closed)
	return b.String()
}

// exchange starts a server with serve and handler h, runs send on a
// fresh connection to it and reads until the server closes or the
// connection has been silent for idle; methods are those of the requests
// sent, for parseResponses.
func exchange(serve serveFunc, h handlerFunc, hdrTimeout, idle time.Duration, methods []string, send func(cr *rawConn)) observed {
	rc := &recorder{}
	conn, stop, err := dialNew(serve, h(rc), hdrTimeout)
	if err != nil {
		return observed{err: err}
	}
	defer stop()
	defer conn.Close()
	start := time.Now()
	cr := newRawConn(conn, idle)
	go func() {
		defer cr.wrote()
		send(cr)
	}()
	o := cr.read(start)
	<-cr.done
	o.seen = rc.all()
	o.resps, o.trailing = parseResponses(o.raw, methods)
	o.early, _ = parseResponses(cr.early, methods)
	return o
}

// sendCase sends a case's bytes: raw, then rest once a response head has
// come back, then a FIN if the case says so.
func sendCase(c confCase) func(cr *rawConn) {
	return func(cr *rawConn) {
		if !cr.write([]byte(c.raw)) {
			return
		}
		if c.rest != "" {
			cr.waitHead(time.Second)
			cr.markEarly()
			if !cr.write([]byte(c.rest)) {
				return
			}
		}
		if c.halfClose {
			cr.conn.(*net.TCPConn).CloseWrite()
		}
	}
}

// sendTrickle sends raw one byte every 50 ms until the server closes.
func sendTrickle(raw string) func(cr *rawConn) {
	return func(cr *rawConn) {
		for i := range len(raw) {
			if !cr.write([]byte{raw[i]}) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// dialNew serves a new loopback listener with serve and connects to it.
func dialNew(serve serveFunc, h http.Handler, hdrTimeout time.Duration) (net.Conn, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	stop := serve(ln, h, hdrTimeout, confMaxHeader)
	conn, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return conn, stop, nil
}

// rawConn reads a connection while a writer goroutine sends on it;
// it stops at EOF, at an error, or once neither side has moved for idle
// (and the writer is done), with 5 s at the most.
type rawConn struct {
	conn     net.Conn
	idle     time.Duration
	mu       sync.Mutex
	got      []byte
	early    []byte
	last     time.Time // last byte either way
	writing  bool
	done     chan struct{} // closed when the writer is done
	headSeen chan struct{}
}

func newRawConn(conn net.Conn, idle time.Duration) *rawConn {
	return &rawConn{conn: conn, idle: idle, last: time.Now(), writing: true, done: make(chan struct{}), headSeen: make(chan struct{})}
}

// write sends p; false if the connection failed.
func (cr *rawConn) write(p []byte) bool {
	cr.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := cr.conn.Write(p)
	cr.mu.Lock()
	cr.last = time.Now()
	cr.mu.Unlock()
	return err == nil
}

// wrote says the writer is done.
func (cr *rawConn) wrote() {
	cr.mu.Lock()
	cr.writing = false
	cr.last = time.Now()
	cr.mu.Unlock()
	close(cr.done)
}

func (cr *rawConn) waitHead(d time.Duration) {
	select {
	case <-cr.headSeen:
	case <-time.After(d):
	}
}

// markEarly keeps what has come back so far.
func (cr *rawConn) markEarly() {
	cr.mu.Lock()
	cr.early = slices.Clone(cr.got)
	cr.mu.Unlock()
}

func (cr *rawConn) read(start time.Time) observed {
	var o observed
	buf := make([]byte, 64<<10)
	headClosed := false
	for time.Since(start) < 5*time.Second {
		cr.mu.Lock()
		deadline := cr.last.Add(cr.idle)
		cr.mu.Unlock()
		cr.conn.SetReadDeadline(deadline)
		n, err := cr.conn.Read(buf)
		cr.mu.Lock()
		if n > 0 {
			cr.got = append(cr.got, buf[:n]...)
			cr.last = time.Now()
			if !headClosed && bytes.Contains(cr.got, []byte("\r\n\r\n")) {
				headClosed = true
				close(cr.headSeen)
			}
		}
		writing, last := cr.writing, cr.last
		cr.mu.Unlock()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if writing || time.Since(last) < cr.idle {
				continue
			}
			break
		}
		// EOF, or a reset: the server closed.
		o.closed = true
		o.closedAfter = time.Since(start)
		break
	}
	cr.mu.Lock()
	o.raw = slices.Clone(cr.got)
	cr.mu.Unlock()
	return o
}

// parseResponses splits raw into responses; methods are those of the
// requests in order (the last repeats; none: GET), 1xx responses taking
// no request. trailing holds what did not parse, and why.
func parseResponses(raw []byte, methods []string) (resps []seenResponse, trailing string) {
	br := bufio.NewReader(bytes.NewReader(raw))
	for i := 0; ; {
		if _, err := br.Peek(1); err != nil {
			return resps, ""
		}
		method := "GET"
		if len(methods) > 0 {
			method = methods[min(i, len(methods)-1)]
		}
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			rest, _ := io.ReadAll(br)
			return resps, fmt.Sprintf("%v: %q", err, rest)
		}
		body, err := io.ReadAll(res.Body)
		r := seenResponse{
			Status:           res.StatusCode,
			Proto:            res.Proto,
			Header:           res.Header,
			TransferEncoding: res.TransferEncoding,
			ContentLength:    res.ContentLength,
			Close:            res.Close,
			Body:             string(body),
		}
		r.Header.Del("Date")
		if err != nil {
			r.BodyErr = err.Error()
		}
		resps = append(resps, r)
		if res.StatusCode >= 200 {
			i++
		}
		if err != nil {
			rest, _ := io.ReadAll(br)
			if len(rest) > 0 {
				return resps, fmt.Sprintf("after a bad body: %q", rest)
			}
			return resps, ""
		}
	}
}

// diff is one difference between the reference and the candidate. Its
// key names what differs, for confCase.allow: "closed", "handler",
// "trailing", "early", "count", "status", "proto", "header <Name>",
// "transfer-encoding", "content-length", "close", "body", "body error".
type diff struct {
	key      string
	text     string
	tolerate string // why it is allowed everywhere, if it is
}

func compare(ref, cand observed) []diff {
	var ds []diff
	add := func(key, format string, args ...any) {
		ds = append(ds, diff{key: key, text: fmt.Sprintf(format, args...)})
	}
	if ref.closed != cand.closed {
		add("closed", "server closed the connection: net/http %v, candidate %v", ref.closed, cand.closed)
	}
	if !slices.Equal(ref.seen, cand.seen) {
		add("handler", "handler saw:\n  net/http  %.400q\n  candidate %.400q", ref.seen, cand.seen)
	}
	if ref.trailing != cand.trailing {
		add("trailing", "unparsed bytes: net/http %.200q, candidate %.200q", ref.trailing, cand.trailing)
	}
	if rs, cs := statuses(ref.early), statuses(cand.early); !slices.Equal(rs, cs) {
		add("early", "responses before the rest was sent: net/http %v, candidate %v", rs, cs)
	}
	if len(ref.resps) != len(cand.resps) {
		add("count", "responses: net/http %v, candidate %v", statuses(ref.resps), statuses(cand.resps))
	}
	for i := range min(len(ref.resps), len(cand.resps)) {
		ds = append(ds, compareResponse(i, ref.resps[i], cand.resps[i])...)
	}
	return ds
}

func compareResponse(i int, r, c seenResponse) []diff {
	var ds []diff
	add := func(key, format string, args ...any) {
		ds = append(ds, diff{key: key, text: fmt.Sprintf("response %d: ", i) + fmt.Sprintf(format, args...)})
	}
	if r.Status != c.Status {
		add("status", "status net/http %d, candidate %d", r.Status, c.Status)
	}
	if r.Proto != c.Proto {
		add("proto", "proto net/http %s, candidate %s", r.Proto, c.Proto)
	}
	// An error response (both >= 400) may word its body differently; its
	// Content-Length then differs with it.
	errText := r.Status >= 400 && c.Status >= 400 && r.Body != c.Body
	// A request refused before any handler: h1 sends its refusal with a
	// Content-Length, net/http ends it by closing the connection.
	refusal := r.Status >= 400 && c.Status >= 400 && r.Close && c.Close
	var names []string
	for k := range r.Header {
		names = append(names, k)
	}
	for k := range c.Header {
		if _, ok := r.Header[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		if !slices.Equal(r.Header[k], c.Header[k]) {
			add("header "+k, "header %s: net/http %q, candidate %q", k, r.Header[k], c.Header[k])
			switch {
			case (errText || refusal) && k == "Content-Length":
				ds[len(ds)-1].tolerate = "follows the error text"
			case k == "Content-Type" && len(c.Header[k]) == 0 && slices.Equal(r.Header[k], []string{"text/plain; charset=utf-8"}):
				// h1 does not sniff a Content-Type the handler did not
				// set: a proxy forwards what the upstream sent.
				ds[len(ds)-1].tolerate = "no Content-Type sniffing"
			}
		}
	}
	if !slices.Equal(r.TransferEncoding, c.TransferEncoding) {
		add("transfer-encoding", "Transfer-Encoding net/http %q, candidate %q", r.TransferEncoding, c.TransferEncoding)
	}
	if r.ContentLength != c.ContentLength {
		add("content-length", "body length net/http %d, candidate %d", r.ContentLength, c.ContentLength)
		if errText || refusal {
			ds[len(ds)-1].tolerate = "follows the error text"
		}
	}
	if r.Close != c.Close {
		add("close", "Connection: close net/http %v, candidate %v", r.Close, c.Close)
	}
	if r.Body != c.Body {
		add("body", "body net/http %.300q, candidate %.300q", r.Body, c.Body)
		if errText {
			if shortText(r) && shortText(c) {
				ds[len(ds)-1].tolerate = "error text (both short plain text)"
			} else {
				ds[len(ds)-1].tolerate = "error body (not both short plain text)"
			}
		}
	}
	if r.BodyErr != c.BodyErr {
		add("body error", "reading the body: net/http %q, candidate %q", r.BodyErr, c.BodyErr)
	}
	return ds
}

func shortText(r seenResponse) bool {
	return len(r.Body) <= 512 && strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain")
}

func statuses(rs []seenResponse) []int {
	var s []int
	for _, r := range rs {
		s = append(s, r.Status)
	}
	return s
}

// report fails the test on each difference that is neither allowed by
// the case nor tolerated everywhere, and logs the others.
func report(t *testing.T, ds []diff, allow []string) {
	t.Helper()
	for _, d := range ds {
		switch {
		case d.tolerate != "":
			t.Logf("allowed difference (%s): %s", d.tolerate, d.text)
		case slices.Contains(allow, d.key):
			t.Logf("allowed difference (case allows %q): %s", d.key, d.text)
		default:
			t.Errorf("%s", d.text)
		}
	}
}

// TestConformanceHarness checks that the comparison sees differences: a
// net/http server configured otherwise (no global OPTIONS handler, a
// larger MaxHeaderBytes) must differ from the reference where that
// matters, and only there.
func TestConformanceHarness(t *testing.T) {
	mutant := func(ln net.Listener, h http.Handler, hdrTimeout time.Duration, maxHeader int) func() {
		srv := newNetHTTP(h, hdrTimeout, 4*maxHeader)
		srv.DisableGeneralOptionsHandler = true
		return startNetHTTP(ln, srv)
	}
	want := map[string]bool{"simple GET": false, "OPTIONS *": true, "headers over MaxHeaderBytes": true}
	for _, c := range confCases {
		differs, ok := want[c.name]
		if !ok {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ref, mut := pair(serveNetHTTP, mutant, func(serve serveFunc) observed {
				return exchange(serve, echo, confHdrTimeout, confIdle, c.methods, sendCase(c))
			})
			if ref.err != nil || mut.err != nil {
				t.Fatalf("exchange: net/http %v, mutant %v", ref.err, mut.err)
			}
			ds := compare(ref, mut)
			for _, d := range ds {
				t.Logf("[%s] %s", d.key, d.text)
			}
			if got := len(ds) > 0; got != differs {
				t.Errorf("differences found: %v, want %v", got, differs)
			}
		})
	}
}
