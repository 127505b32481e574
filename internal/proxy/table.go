package proxy

import (
	"cmp"
	"slices"
	"strings"
)

// Upstream is one ready replica behind a route.
type Upstream struct {
	ID   string // task ID
	Addr string // host:port
}

// Route sends the requests for Host (and paths under PathPrefix) to its
// upstreams.
type Route struct {
	Name       string // "project/service", for metrics and logs
	Host       string // exact host, or "*.example.org" (one label)
	PathPrefix string // "" or "/x"; the longest matching prefix wins
	Upstreams  []Upstream
	// TLS: a certificate is served for Host, and plain HTTP requests are
	// redirected to HTTPS (308) when the proxy has an HTTPS listener.
	TLS bool
}

// Table is the whole routing table, swapped at once by Proxy.Update.
type Table struct {
	Version uint64
	Routes  []Route
}

// table is a Table compiled for lookups: no allocation and no map built
// per request.
type table struct {
	version  uint64
	exact    map[string][]*route // by lower-case host; longest prefix first
	wildcard map[string][]*route // "*.example.org" is under "example.org"
	// byID holds the upstreams of this table by task ID (several when a
	// replica is reached on several ports).
	byID map[string][]*upstream
}

// route is a compiled Route.
type route struct {
	name   string
	prefix string // "" or "/x", no trailing slash
	tls    bool
	ups    []*upstream
	m      *routeMetrics
}

// matches reports whether path is under r's prefix, on a segment
// boundary: "/x" matches "/x" and "/x/y" but not "/xy".
func (r *route) matches(path string) bool {
	if r.prefix == "" {
		return true
	}
	if !strings.HasPrefix(path, r.prefix) {
		return false
	}
	return len(path) == len(r.prefix) || path[len(r.prefix)] == '/'
}

// hasDotSegment reports whether the (decoded) path holds a "." or ".."
// segment. Such a request is refused rather than routed: prefixes are
// matched on the path as received, and an upstream that resolves the dot
// segments would read /api/../admin, routed to /api, as /admin. A
// backslash also separates segments and ";..." parameters are ignored
// (servers that read them so exist: `..\x`, `..;/x`).
func hasDotSegment(path string) bool {
	for path != "" {
		i := strings.IndexAny(path, "/\\")
		seg := path
		if i >= 0 {
			seg, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// lookup finds the route for a Host header and a path. It does not
// allocate, whatever the case of host.
func (t *table) lookup(hostport, path string) *route {
	var buf [256]byte
	host, ok := normalizeHost(hostport, buf[:0])
	if !ok {
		return nil
	}
	if rs, ok := t.exact[string(host)]; ok {
		if r := matchPath(rs, path); r != nil {
			return r
		}
	}
	if i := indexByte(host, '.'); i > 0 {
		if rs, ok := t.wildcard[string(host[i+1:])]; ok {
			return matchPath(rs, path)
		}
	}
	return nil
}

func matchPath(rs []*route, path string) *route {
	for _, r := range rs {
		if r.matches(path) {
			return r
		}
	}
	return nil
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// normalizeHost appends to dst the host of a Host header: port stripped,
// lower case, no trailing dot. It reports false for a host too long for
// dst's capacity or empty.
func normalizeHost(hostport string, dst []byte) ([]byte, bool) {
	h := hostport
	if strings.HasPrefix(h, "[") { // IPv6 literal
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > cap(dst) {
		return dst, false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}

// normalizePrefix turns "", "/" and "/x/" into "" and "/x".
func normalizePrefix(p string) string {
	p = strings.TrimRight(p, "/")
	if p != "" && p[0] != '/' {
		p = "/" + p
	}
	return p
}

// compile builds the lookup form of t. states gives the upstream state
// for an upstream (shared across tables so in-flight counts and
// ejections survive updates); metricsFor the metrics of a route name.
// Duplicate (host, prefix) pairs keep the first route; they are returned
// for the caller to log.
func compile(t *Table, states func(Upstream, string) *upstream, metricsFor func(string) *routeMetrics) (*table, []Route) {
	ct := &table{
		exact:    map[string][]*route{},
		wildcard: map[string][]*route{},
		byID:     map[string][]*upstream{},
	}
	if t == nil {
		return ct, nil
	}
	ct.version = t.Version
	type key struct{ host, prefix string }
	seen := map[key]bool{}
	var dups []Route
	for _, rt := range t.Routes {
		host, ok := normalizeHost(rt.Host, make([]byte, 0, 256))
		if !ok {
			dups = append(dups, rt)
			continue
		}
		r := &route{name: rt.Name, prefix: normalizePrefix(rt.PathPrefix), tls: rt.TLS, m: metricsFor(rt.Name)}
		k := key{string(host), r.prefix}
		if seen[k] {
			dups = append(dups, rt)
			continue
		}
		seen[k] = true
		checkHost := string(host)
		m := ct.exact
		if strings.HasPrefix(k.host, "*.") {
			m = ct.wildcard
			k.host = k.host[2:]
			checkHost = ""
		}
		for _, u := range rt.Upstreams {
			if u.Addr == "" {
				continue
			}
			s := states(u, checkHost)
			if !slices.Contains(r.ups, s) {
				r.ups = append(r.ups, s)
			}
			if !slices.Contains(ct.byID[u.ID], s) {
				ct.byID[u.ID] = append(ct.byID[u.ID], s)
			}
		}
		m[k.host] = append(m[k.host], r)
	}
	for _, m := range []map[string][]*route{ct.exact, ct.wildcard} {
		for _, rs := range m {
			slices.SortStableFunc(rs, func(a, b *route) int { return cmp.Compare(len(b.prefix), len(a.prefix)) })
		}
	}
	return ct, dups
}
