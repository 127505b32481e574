package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

// maxHeadBytes bounds an upstream's response head.
const maxHeadBytes = 128 << 10

// respHead is a parsed upstream response head. Its buffers belong to the
// connection and are reused.
type respHead struct {
	status int
	minor  int // HTTP/1.minor

	arena  []byte   // canonical keys and values, back to back
	fields []hfield // in arrival order

	contentLength int64 // -1: none
	chunked       bool  // Transfer-Encoding: chunked
	untilClose    bool  // the body ends when the connection closes
	close         bool  // the connection cannot be reused after this
	connTokens    bool  // Connection names other headers to drop
}

type hfield struct {
	key    string // interned canonical key, or "" (then k0:k1)
	k0, k1 int32
	v0, v1 int32
	drop   bool // hop-by-hop: not forwarded
}

func (h *respHead) reset() {
	h.status, h.minor = 0, 0
	h.arena = h.arena[:0]
	h.fields = h.fields[:0]
	h.contentLength = -1
	h.chunked, h.untilClose, h.close, h.connTokens = false, false, false, false
}

func (h *respHead) keyBytes(f *hfield) []byte   { return h.arena[f.k0:f.k1] }
func (h *respHead) valueBytes(f *hfield) []byte { return h.arena[f.v0:f.v1] }

// readHead reads a response head from br. Errors are classified:
// errResetBefore (the upstream closed or reset before sending a byte),
// errHeaderTimeout, errProtocol.
func readHead(br *bufio.Reader, h *respHead) error {
	h.reset()
	line, err := br.ReadSlice('\n')
	if err != nil {
		switch {
		case isTimeout(err):
			return fmt.Errorf("%w: %w", errHeaderTimeout, err)
		case len(line) == 0 && br.Buffered() == 0:
			return fmt.Errorf("%w: %w", errResetBefore, err)
		}
		return fmt.Errorf("%w: status line: %w", errProtocol, err)
	}
	if err := h.parseStatus(trimEOL(line)); err != nil {
		return err
	}
	total := len(line)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if isTimeout(err) {
				return fmt.Errorf("%w: %w", errHeaderTimeout, err)
			}
			return fmt.Errorf("%w: header: %w", errProtocol, err)
		}
		if total += len(line); total > maxHeadBytes {
			return fmt.Errorf("%w: head over %d bytes", errProtocol, maxHeadBytes)
		}
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		if err := h.addField(line); err != nil {
			return err
		}
	}
	return h.finish()
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parseStatus parses "HTTP/1.1 200 OK".
func (h *respHead) parseStatus(line []byte) error {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return fmt.Errorf("%w: status line %q", errProtocol, clip(line))
	}
	if line[7] < '0' || line[7] > '9' {
		return fmt.Errorf("%w: status line %q", errProtocol, clip(line))
	}
	h.minor = int(line[7] - '0')
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: status line %q", errProtocol, clip(line))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return fmt.Errorf("%w: status %d", errProtocol, code)
	}
	h.status = code
	return nil
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// addField parses "Key: value" into the arena, key canonicalised.
func (h *respHead) addField(line []byte) error {
	if line[0] == ' ' || line[0] == '\t' {
		return fmt.Errorf("%w: obsolete line folding", errProtocol)
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return fmt.Errorf("%w: header line %q", errProtocol, clip(line))
	}
	k0 := len(h.arena)
	upper := true
	for _, c := range line[:i] {
		if !isTokenChar(c) {
			return fmt.Errorf("%w: header name %q", errProtocol, clip(line[:i]))
		}
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		h.arena = append(h.arena, c)
		upper = c == '-'
	}
	k1 := len(h.arena)
	v := bytes.Trim(line[i+1:], " \t")
	for _, c := range v {
		// NUL, a bare CR or another control: RFC 9110 section 5.5 has
		// an intermediary refuse or clean them; Go's own client
		// refuses them, and so does this one.
		if (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("%w: control character in the value of %q", errProtocol, clip(line[:i]))
		}
	}
	h.arena = append(h.arena, v...)
	f := hfield{k0: int32(k0), k1: int32(k1), v0: int32(k1), v1: int32(len(h.arena))}
	f.key = internedKeys[string(h.arena[k0:k1])]
	h.fields = append(h.fields, f)
	return nil
}

// finish derives the framing from the headers and marks the hop-by-hop
// ones (RFC 9112 section 6.3).
func (h *respHead) finish() error {
	var te bool
	for i := range h.fields {
		f := &h.fields[i]
		switch f.key {
		case "Content-Length":
			n, ok := parseLength(h.valueBytes(f))
			if !ok || (h.contentLength >= 0 && n != h.contentLength) {
				return fmt.Errorf("%w: content-length %q", errProtocol, clip(h.valueBytes(f)))
			}
			h.contentLength = n
		case "Transfer-Encoding":
			te = true
			f.drop = true
			h.chunked = lastTokenIs(h.valueBytes(f), "chunked")
		case "Connection":
			f.drop = true
			forEachToken(h.valueBytes(f), func(t []byte) {
				switch {
				case asciiEqualFold(t, "close"):
					h.close = true
				case asciiEqualFold(t, "keep-alive"), asciiEqualFold(t, "upgrade"):
				default:
					h.connTokens = true
				}
			})
		case "Keep-Alive", "Proxy-Connection", "Te", "Upgrade", "Proxy-Authenticate":
			f.drop = true
		}
	}
	if h.connTokens {
		h.dropConnTokens()
	}
	if h.minor == 0 {
		h.close = true // no keep-alive with HTTP/1.0 upstreams
		if te {
			return fmt.Errorf("%w: transfer-encoding in HTTP/1.0", errProtocol)
		}
	}
	if te {
		// Transfer-Encoding overrides Content-Length, whose presence
		// then makes the connection suspect.
		if h.contentLength >= 0 {
			h.close = true
		}
		h.contentLength = -1
		if !h.chunked {
			h.untilClose = true
			h.close = true
		}
	} else if h.contentLength < 0 {
		h.untilClose = true
		h.close = true
	}
	return nil
}

// hasBody reports whether a response to method with h's status carries
// a body.
func (h *respHead) hasBody(method string) bool {
	return method != http.MethodHead && h.status >= 200 && h.status != http.StatusNoContent && h.status != http.StatusNotModified
}

// noBody adjusts the framing for a response without body: the
// connection stays reusable whatever the headers said.
func (h *respHead) noBody() {
	h.untilClose = false
	h.chunked = false
	if h.minor == 1 && !h.hasCloseToken() {
		h.close = false
	}
}

func (h *respHead) hasCloseToken() bool {
	for i := range h.fields {
		f := &h.fields[i]
		if f.key == "Connection" {
			found := false
			forEachToken(h.valueBytes(f), func(t []byte) {
				if asciiEqualFold(t, "close") {
					found = true
				}
			})
			if found {
				return true
			}
		}
	}
	return false
}

// dropConnTokens drops the headers named by Connection.
func (h *respHead) dropConnTokens() {
	for i := range h.fields {
		f := &h.fields[i]
		if f.key != "Connection" {
			continue
		}
		forEachToken(h.valueBytes(f), func(t []byte) {
			for j := range h.fields {
				g := &h.fields[j]
				if asciiEqualFold(t, string(h.keyBytes(g))) {
					g.drop = true
				}
			}
		})
	}
}

// publish copies the forwarded fields into hdr with two allocations: one
// string holding every key and value, one slice backing the values.
func (h *respHead) publish(hdr http.Header) {
	n := 0
	for i := range h.fields {
		if !h.fields[i].drop {
			n++
		}
	}
	if n == 0 {
		return
	}
	vals := make([]string, n)
	s := string(h.arena)
	j := 0
	for i := range h.fields {
		f := &h.fields[i]
		if f.drop {
			continue
		}
		if f.key == "Content-Length" && (h.contentLength < 0 || h.status == http.StatusNoContent) {
			continue
		}
		k := f.key
		if k == "" {
			k = s[f.k0:f.k1]
		}
		v := s[f.v0:f.v1]
		if old, ok := hdr[k]; ok {
			hdr[k] = append(old, v)
			continue
		}
		vals[j] = v
		hdr[k] = vals[j : j+1 : j+1]
		j++
	}
}

// parseLength parses a Content-Length value.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func lastTokenIs(v []byte, token string) bool {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return asciiEqualFold(bytes.Trim(v, " \t"), token)
}

func forEachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		if t = bytes.Trim(t, " \t"); len(t) > 0 {
			fn(t)
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	if c >= 0x80 || c <= ' ' || c == 0x7f {
		return false
	}
	return !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
}

// internedKeys maps the common canonical header names to constant
// strings, so forwarding them costs no allocation.
var internedKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
		"Access-Control-Max-Age", "Age", "Alt-Svc", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Location", "Content-Range",
		"Content-Security-Policy", "Content-Type", "Date", "Etag", "Expires", "Keep-Alive", "Last-Modified",
		"Link", "Location", "Pragma", "Proxy-Authenticate", "Proxy-Connection", "Referrer-Policy",
		"Retry-After", "Sec-Websocket-Accept", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol",
		"Server", "Set-Cookie", "Strict-Transport-Security", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Vary", "Via", "Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "X-Powered-By",
		"X-Request-Id", "X-Xss-Protection", "Permissions-Policy", "Cross-Origin-Opener-Policy",
		"Cross-Origin-Resource-Policy", "Cross-Origin-Embedder-Policy",
	} {
		m[k] = k
	}
	return m
}()

// readTrailers reads the trailer section after a last chunk.
func readTrailers(br *bufio.Reader, h *respHead) error {
	h.arena = h.arena[:0]
	h.fields = h.fields[:0]
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if total += len(line); total > maxHeadBytes {
			return fmt.Errorf("%w: trailers over %d bytes", errProtocol, maxHeadBytes)
		}
		if line = trimEOL(line); len(line) == 0 {
			return nil
		}
		if err := h.addField(line); err != nil {
			return err
		}
	}
}
