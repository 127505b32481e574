package compose

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ruche-platform/ruche/client"
)

// Routes come from three forms, read in this order into
// ServiceSpec.Routes: x-ruche.routes, the ruche.route labels, Traefik's
// labels. README.md ("Routes") documents each form for operators.

// rucheRouteLabel is the label shorthand: ruche.route, and
// ruche.route.<name> for more routes.
const rucheRouteLabel = "ruche.route"

// routeName is the <name> of ruche.route.<name>.
var routeName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// routeAt says where the fields of a route were written: compose paths
// below the service ("labels.ruche.route", "x-ruche.routes[0].port"), so
// that a problem Validate finds in Routes[i] points at its line.
type routeAt struct {
	item, host, path, port, tls, cert, key string
}

// under prefixes every path of at.
func (at routeAt) under(prefix string) routeAt {
	for _, f := range []*string{&at.item, &at.host, &at.path, &at.port, &at.tls, &at.cert, &at.key} {
		if *f != "" {
			*f = prefix + *f
		}
	}
	return at
}

// foundRoute is a route read from the file, before its port is settled.
type foundRoute struct {
	spec client.RouteSpec
	at   routeAt
	// needsPort: the port was left out; the service's only container
	// port is taken, and portHint says how to write one.
	needsPort bool
	portHint  string
	routers   []string // Traefik routers merged into it
	redirect  string   // the Traefik label asking for a redirection to HTTPS
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// routeLabels returns the service's labels without those ruche reads as
// routes: they configure the ingress, not the container, and must not
// change the replica template.
func routeLabels(labels types.Labels) map[string]string {
	out := mapOrNil(labels)
	for k := range out {
		if isRouteLabel(k) {
			delete(out, k)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// routes reads the routes of a service: x-ruche.routes, the ruche.route
// labels and the routers of its Traefik labels (tp).
func (l *load) routes(name string, s types.ServiceConfig, ports []client.PortSpec, tp *traefikProject) []client.RouteSpec {
	path := "services." + name
	var found []foundRoute
	found = append(found, l.xrucheRoutes(path, s.Extensions["x-ruche"])...)
	found = append(found, l.labelRoutes(path, s.Labels)...)
	found = append(found, tp.routes(name)...)

	known := containerPorts(ports, s.Expose)
	var out []client.RouteSpec
	for _, f := range found {
		if f.needsPort {
			port, msg := defaultPort(known)
			if msg != "" {
				at := cmpOr(f.at.port, f.at.item)
				l.problemAt(path+"."+at, "route %s needs a port: %s; %s", hostPath(f.spec), msg, f.portHint)
				continue
			}
			f.spec.Port = port
		}
		i := len(out)
		out = append(out, f.spec)
		spec := fmt.Sprintf("%s.routes[%d]", path, i)
		for suffix, at := range map[string]string{"": f.at.item, ".host": f.at.host, ".path_prefix": f.at.path,
			".port": f.at.port, ".tls": f.at.tls, ".cert": f.at.cert, ".key": f.at.key} {
			if at == "" {
				at = f.at.item
			}
			l.renames[spec+suffix] = path + "." + at
		}
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// containerPorts are the TCP ports a service declares in ports: and
// expose:, in order, each once.
func containerPorts(ports []client.PortSpec, expose types.StringOrNumberList) []uint16 {
	var out []uint16
	add := func(p uint16) {
		if p != 0 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, p := range ports {
		if p.Protocol == "" || p.Protocol == "tcp" {
			add(p.Target)
		}
	}
	for _, e := range expose {
		spec, proto, _ := strings.Cut(strings.TrimSpace(e), "/")
		if proto != "" && proto != "tcp" {
			continue
		}
		lo, hi, isRange := strings.Cut(spec, "-")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		switch {
		case !isRange && err1 == nil:
			add(uint16(a))
		case isRange && err1 == nil && err2 == nil && a <= b && b-a < 1024:
			for p := a; p <= b; p++ {
				add(uint16(p))
			}
		}
	}
	return out
}

// defaultPort is the port of a route that names none: the service's only
// container port. Otherwise it says why there is none.
func defaultPort(known []uint16) (uint16, string) {
	switch len(known) {
	case 0:
		return 0, "the service declares no container port (in ports: or expose:) to take"
	case 1:
		return known[0], ""
	}
	list := make([]string, len(known))
	for i, p := range known {
		list[i] = strconv.Itoa(int(p))
	}
	return 0, "the service has several container ports (" + strings.Join(list, ", ") + ")"
}

// labelRoutes reads ruche.route and ruche.route.<name>, and reports every
// other ruche.* label: the prefix is ruche's own.
func (l *load) labelRoutes(path string, labels types.Labels) []foundRoute {
	var out []foundRoute
	for _, key := range sortedKeys(labels) {
		name, isRoute := strings.CutPrefix(key, rucheRouteLabel)
		switch {
		case !strings.HasPrefix(key, "ruche."):
			continue
		case !isRoute || name != "" && (name[0] != '.' || !routeName.MatchString(name[1:])):
			l.problemAt(path+".labels."+key, "labels under ruche. are ruche's own: it reads ruche.route and ruche.route.<name> (letters, digits, '-' and '_')")
			continue
		}
		r, err := parseRouteShorthand(labels[key])
		if err != nil {
			l.problemAt(path+".labels."+key, "%v", err)
			continue
		}
		r.spec.Source = "label " + key
		r.at = routeAt{item: "labels." + key}
		r.portHint = "write it last, as in " + shorthandExample
		out = append(out, r)
	}
	return out
}

// shorthandExample is the label shorthand in full.
const shorthandExample = "pad.example.org/api:9001"

// parseRouteShorthand reads the label shorthand:
//
//	<host>[/<path>][:<port>][ tls=<acme|internal|none>]
//
// The port is the digits after the last ':'; the path starts at the first
// '/' after the host.
func parseRouteShorthand(s string) (foundRoute, error) {
	var r foundRoute
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return r, fmt.Errorf("empty route: write host[/path][:port], as in %s", shorthandExample)
	}
	target := fields[0]
	for _, opt := range fields[1:] {
		mode, ok := strings.CutPrefix(opt, "tls=")
		if !ok || r.spec.TLS != "" {
			return r, fmt.Errorf("%q: after the route comes only tls=acme, tls=internal or tls=none", opt)
		}
		switch mode {
		case client.TLSACME, client.TLSInternal, client.TLSNone:
			r.spec.TLS = mode
		case client.TLSFiles:
			return r, fmt.Errorf("tls=files: certificate files are given in x-ruche.routes (tls: {cert: ..., key: ...})")
		default:
			return r, fmt.Errorf("tls=%s is not a TLS mode (acme, internal or none)", mode)
		}
	}
	if strings.Contains(target, "://") {
		return r, fmt.Errorf("%q: write host[/path][:port] without a scheme, and tls=... for TLS", target)
	}
	if i := strings.LastIndexByte(target, ':'); i >= 0 && i+1 < len(target) && allDigits(target[i+1:]) {
		port, err := strconv.ParseUint(target[i+1:], 10, 16)
		if err != nil || port == 0 {
			return r, fmt.Errorf("port %s is not between 1 and 65535", target[i+1:])
		}
		r.spec.Port, target = uint16(port), target[:i]
	} else {
		r.needsPort = true
	}
	host, rest, hasPath := strings.Cut(target, "/")
	if hasPath {
		r.spec.PathPrefix = pathPrefix("/" + rest)
	}
	if strings.Contains(host, ":") {
		return r, fmt.Errorf("%q: the port comes last, as in %s", s, shorthandExample)
	}
	if host == "" {
		return r, fmt.Errorf("%q has no host: write host[/path][:port], as in %s", s, shorthandExample)
	}
	r.spec.Host = strings.ToLower(host)
	return r, nil
}

// pathPrefix normalises a route's path prefix as the proxy matches it, on
// segment boundaries: "/api/" is "/api", and "/" is every path, as no
// prefix is.
func pathPrefix(p string) string {
	if strings.HasPrefix(p, "/") {
		return strings.TrimRight(p, "/")
	}
	return p // Validate reports it
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// xrucheRoutes reads x-ruche.routes, whose keys the walker checked.
func (l *load) xrucheRoutes(path string, x any) []foundRoute {
	m, _ := x.(map[string]any)
	items, _ := m["routes"].([]any)
	list := "x-ruche.routes"
	written := 0
	for {
		if _, ok := l.items[fmt.Sprintf("%s.%s[%d]", path, list, written)]; !ok {
			break
		}
		written++
	}
	var out []foundRoute
	for i, item := range items {
		at, fields := list, false // merged from several files: the list is all that can be said
		if written == len(items) {
			at, fields = strings.TrimPrefix(l.items[fmt.Sprintf("%s.%s[%d]", path, list, i)], path+"."), true
		}
		r, ok := l.xrucheRoute(path, at, fields, item)
		if !ok {
			continue
		}
		r.spec.Source = fmt.Sprintf("%s[%d]", list, i)
		out = append(out, r)
	}
	return out
}

// xrucheRoute reads one item of x-ruche.routes written at path.at; fields
// says whether its keys are written below at.
func (l *load) xrucheRoute(path, at string, fields bool, item any) (foundRoute, bool) {
	if s, ok := item.(string); ok {
		r, err := parseRouteShorthand(s)
		if err != nil {
			l.problemAt(path+"."+at, "%v", err)
			return r, false
		}
		r.at = routeAt{item: at}
		r.portHint = "write it last, as in " + shorthandExample
		return r, true
	}
	m, _ := item.(map[string]any)
	r := foundRoute{at: routeAt{item: at, host: at, path: at, port: at, tls: at}}
	if fields {
		r.at = routeAt{item: at, host: at + ".host", path: at + ".path", port: at + ".port", tls: at + ".tls"}
	}
	ok := true
	if h, isString := m["host"].(string); isString { // Validate checks the value
		r.spec.Host = strings.ToLower(strings.TrimSpace(h))
	} else {
		l.problemAt(path+"."+cmpOr(keyIfSet(m, "host", r.at.host), at), "a route needs a host")
		ok = false
	}
	if p, set := m["path"]; set {
		s, isString := p.(string)
		if !isString {
			l.problemAt(path+"."+r.at.path, "must be a path prefix, like /api")
			ok = false
		}
		r.spec.PathPrefix = pathPrefix(s)
	}
	switch p := m["port"].(type) {
	case nil:
		r.needsPort, r.portHint = true, "add port:"
	case int:
		if p < 1 || p > 65535 {
			l.problemAt(path+"."+r.at.port, "%d is not a port between 1 and 65535", p)
			ok = false
		}
		r.spec.Port = uint16(p)
	case string:
		n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
		if err != nil || n == 0 {
			l.problemAt(path+"."+r.at.port, "%q is not a port between 1 and 65535", p)
			ok = false
		}
		r.spec.Port = uint16(n)
	default:
		l.problemAt(path+"."+r.at.port, "must be a port between 1 and 65535")
		ok = false
	}
	switch t := m["tls"].(type) {
	case nil:
	case string:
		switch t {
		case client.TLSAuto, client.TLSACME, client.TLSInternal, client.TLSNone: // "": an unset ${TLS}
			r.spec.TLS = t
		default:
			l.problemAt(path+"."+r.at.tls, "%q is not a TLS mode: write acme, internal, none, or {cert: <file>, key: <file>}", t)
			ok = false
		}
	case map[string]any:
		if !l.tlsFiles(path, &r, t) {
			ok = false
		}
	default:
		l.problemAt(path+"."+r.at.tls, "write acme, internal, none, or {cert: <file>, key: <file>}")
		ok = false
	}
	return r, ok
}

func keyIfSet(m map[string]any, key, at string) string {
	if _, ok := m[key]; ok {
		return at
	}
	return ""
}

// tlsFiles reads the certificate and key files of tls: {cert, key}.
func (l *load) tlsFiles(path string, r *foundRoute, t map[string]any) bool {
	r.spec.TLS = client.TLSFiles
	r.at.cert, r.at.key = r.at.tls, r.at.tls
	if r.at.tls != r.at.item {
		r.at.cert, r.at.key = r.at.tls+".cert", r.at.tls+".key"
	}
	ok := true
	for _, f := range []struct {
		name string
		at   string
		dst  *[]byte
	}{{"cert", r.at.cert, &r.spec.Cert}, {"key", r.at.key, &r.spec.Key}} {
		name, _ := t[f.name].(string)
		switch {
		case strings.TrimSpace(name) == "":
			l.problemAt(path+"."+cmpOr(keyIfSet(t, f.name, f.at), r.at.tls), "tls with files needs %s: <file>", f.name)
			ok = false
		case l.mode == noFiles:
			l.problemAt(path+"."+f.at, "%s", needsFilesReason)
			ok = false
		default:
			file := name
			if !filepath.IsAbs(file) {
				file = filepath.Join(l.workingDir, file)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				l.problemAt(path+"."+f.at, "cannot read it: %v", err)
				ok = false
			}
			*f.dst = data
		}
	}
	return ok
}
