package proxy

import (
	"bufio"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// reqInfo is what ServeHTTP learns about a request, kept on its stack.
type reqInfo struct {
	peer    netip.Addr // the TCP peer
	client  netip.Addr // the real client: peer, or what trusted proxies say
	trusted bool       // peer is a trusted proxy
	https   bool

	now       int64 // unix ns of the current attempt's start
	retryable bool  // idempotent and nothing to replay: safe to resend
	upgrade   bool  // a protocol upgrade (WebSocket) request
	bodyLen   int64
	stall     *stallBody // the request body's read timeout; nil without a body
}

// idempotent methods may be sent twice.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// validHead reports whether r's method is a token and its host holds
// only the characters of a host name, an IP literal and a port. Go's
// HTTP/1 server checks both before the handler runs; its HTTP/2 server
// refuses only CR, LF and NUL in :method and :authority, and both are
// written into the upstream's request head as they are.
func validHead(r *http.Request) bool {
	m := r.Method
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !tokenChars[m[i]] {
			return false
		}
	}
	h := r.Host
	for i := 0; i < len(h); i++ {
		if c := h[i]; !tokenChars[c] && c != ':' && c != '[' && c != ']' {
			return false
		}
	}
	return true
}

// tokenChars marks the bytes allowed in a token (RFC 9110 section 5.6.2).
var tokenChars = func() (t [256]bool) {
	for c := range t {
		t[c] = isTokenChar(byte(c))
	}
	return t
}()

// hasToken reports whether a comma-separated header (all its lines)
// holds token, case-insensitively.
func hasToken(vals []string, token string) bool {
	for _, v := range vals {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// skipRequestHeader reports whether a client header is not forwarded as
// is: hop-by-hop headers, framing (written by the proxy), and the
// forwarding headers (rewritten by the proxy).
func skipRequestHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding",
		"Upgrade", "Proxy-Authorization", "Proxy-Authenticate", "Content-Length", "Expect", "Host",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Real-Ip":
		return true
	}
	return false
}

// dropForwarding reports whether a client header that names itself a
// forwarding header (X-Forwarded-*, X-Real-IP) is dropped: from an
// untrusted peer all of them (X-Forwarded-Port, -Prefix, -Ssl... are
// believed by frameworks behind a proxy as much as X-Forwarded-Proto), and
// from anyone the spellings with "_" for "-", which CGI-style servers
// (PHP, WSGI, Rack) read as the same variable as the real header.
func dropForwarding(k string, trusted bool) bool {
	if !cgiHasPrefix(k, "x-forwarded-") && !cgiEqual(k, "x-real-ip") {
		return false
	}
	return !trusted || strings.IndexByte(k, '_') >= 0
}

// cgiHasPrefix reports whether s starts with the lower-case prefix,
// ignoring case and reading "_" as "-".
func cgiHasPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && cgiEqual(s[:len(prefix)], prefix)
}

// cgiEqual reports whether s is the lower-case name, ignoring case and
// reading "_" as "-".
func cgiEqual(s, name string) bool {
	if len(s) != len(name) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// requestTarget is the request-target to send upstream: the client's own
// when it is a plain origin-form (no re-encoding), else a rebuilt one.
func requestTarget(r *http.Request) string {
	t := r.RequestURI
	if t == "*" && r.Method == http.MethodOptions {
		return t
	}
	if t == "" || t[0] != '/' {
		return r.URL.RequestURI()
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] == 0x7f {
			return r.URL.RequestURI()
		}
	}
	return t
}

// writeRequestHead writes the request line and headers for upstream
// framing the body as given: length >= 0 with Content-Length, -1 chunked.
func writeRequestHead(bw *bufio.Writer, r *http.Request, ri *reqInfo, length int64, scratch []byte) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(requestTarget(r))
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")

	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipRequestHeader(k) || (len(conn) > 0 && hasToken(conn, k)) || dropForwarding(k, ri.trusted) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	writeForwarded(bw, r, ri, scratch)

	if ri.upgrade {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		bw.WriteString(r.Header["Upgrade"][0])
		bw.WriteString("\r\n")
	}
	switch {
	case length > 0 || (length == 0 && sendsZeroLength(r.Method)):
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(scratch[:0], length, 10))
		bw.WriteString("\r\n")
	case length < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
}

// sendsZeroLength: methods that carry a body announce an empty one, as
// net/http does (some servers answer 411 otherwise).
func sendsZeroLength(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// writeForwarded writes X-Forwarded-For/-Proto/-Host, X-Real-IP and
// Forwarded (RFC 7239). A trusted peer's values are kept and extended; an
// untrusted peer's are replaced.
func writeForwarded(bw *bufio.Writer, r *http.Request, ri *reqInfo, scratch []byte) {
	proto := "http"
	if ri.https {
		proto = "https"
	}
	bw.WriteString("X-Forwarded-For: ")
	if ri.trusted {
		for _, v := range r.Header["X-Forwarded-For"] {
			bw.WriteString(v)
			bw.WriteString(", ")
		}
	}
	bw.Write(ri.peer.AppendTo(scratch[:0]))
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	if v := r.Header["X-Forwarded-Proto"]; ri.trusted && len(v) > 0 {
		bw.WriteString(v[0])
	} else {
		bw.WriteString(proto)
	}
	bw.WriteString("\r\nX-Forwarded-Host: ")
	if v := r.Header["X-Forwarded-Host"]; ri.trusted && len(v) > 0 {
		bw.WriteString(v[0])
	} else {
		bw.WriteString(r.Host)
	}
	bw.WriteString("\r\nX-Real-IP: ")
	bw.Write(ri.client.AppendTo(scratch[:0]))
	bw.WriteString("\r\nForwarded: ")
	if ri.trusted {
		for _, v := range r.Header["Forwarded"] {
			bw.WriteString(v)
			bw.WriteString(", ")
		}
	}
	bw.WriteString("for=")
	if ri.peer.Is6() {
		bw.WriteString(`"[`)
		bw.Write(ri.peer.AppendTo(scratch[:0]))
		bw.WriteString(`]"`)
	} else {
		bw.Write(ri.peer.AppendTo(scratch[:0]))
	}
	bw.WriteString(`;host="`)
	writeQuoted(bw, r.Host)
	bw.WriteString(`";proto=`)
	bw.WriteString(proto)
	bw.WriteString("\r\n")
}

// writeQuoted writes s escaped for a quoted-string.
func writeQuoted(bw *bufio.Writer, s string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			bw.WriteByte('\\')
		}
		bw.WriteByte(s[i])
	}
}

// clientAddrs finds the TCP peer of r and the real client: the peer
// itself, or, when the peer is a trusted proxy, the right-most address of
// X-Forwarded-For (or else Forwarded) that is not a trusted proxy.
func clientAddrs(r *http.Request, trusted []netip.Prefix) (peer, client netip.Addr, peerTrusted bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err == nil {
		peer = ap.Addr().Unmap()
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		peer = a.Unmap()
	}
	client = peer
	if len(trusted) == 0 || !isTrusted(peer, trusted) {
		return peer, client, false
	}
	if a, ok := fromForwardedFor(r.Header["X-Forwarded-For"], trusted, false); ok {
		return peer, a, true
	}
	if a, ok := fromForwardedFor(r.Header["Forwarded"], trusted, true); ok {
		return peer, a, true
	}
	return peer, client, true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// fromForwardedFor walks a forwarding list from the right (the hop
// nearest to us) and returns the first address not trusted, or the
// left-most valid one if all are trusted. rfc7239 reads Forwarded's
// "for=" parameters, otherwise the values are plain addresses
// (X-Forwarded-For). It stops at the first element it cannot parse:
// what lies left of it cannot be believed.
func fromForwardedFor(vals []string, trusted []netip.Prefix, rfc7239 bool) (netip.Addr, bool) {
	var last netip.Addr
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var elem string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				elem, v = v[j+1:], v[:j]
			} else {
				elem, v = v, ""
			}
			if rfc7239 {
				elem = forParam(elem)
			}
			a, ok := parseNodeAddr(strings.TrimSpace(elem))
			if !ok {
				return last, last.IsValid()
			}
			if !isTrusted(a, trusted) {
				return a, true
			}
			last = a
		}
	}
	return last, last.IsValid()
}

// forParam returns the value of the for= parameter of one Forwarded
// element, unquoted.
func forParam(elem string) string {
	for elem != "" {
		var pair string
		pair, elem, _ = strings.Cut(elem, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "for") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// parseNodeAddr parses "1.2.3.4", "1.2.3.4:80", "2001:db8::1",
// "[2001:db8::1]" or "[2001:db8::1]:80".
func parseNodeAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}
