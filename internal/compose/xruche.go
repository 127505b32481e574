package compose

import (
	"fmt"
	"strconv"

	"github.com/ruche-platform/ruche/client"
	"gopkg.in/yaml.v3"
)

// xruche parses a service's x-ruche strictly: unlike other extensions, it
// is ruche's own, so a typo in it is an error. Values that need the file's
// variables (routes) are checked when converting; the walker checks keys
// and shapes, and records where each was written.
func (w *walker) xruche(e entry) {
	e.pattern = "services.*.x-ruche"
	if e.value.Kind != yaml.MappingNode {
		if e.value.Kind == yaml.ScalarNode && e.value.Tag == "!!null" {
			return
		}
		w.problem(e, "x-ruche is a mapping (public:, spread:, routes:)")
		w.prune(e)
		return
	}
	bad := false
	for _, p := range pairs(e.value) {
		ke := entry{parent: p.owner, node: p.key, value: resolve(p.value), path: e.path + "." + p.key.Value, line: p.key.Line}
		w.index[ke.path] = loc{w.file, ke.line}
		s, ok := w.interp(ke.value)
		switch p.key.Value {
		case "public":
			if _, err := strconv.ParseBool(s); ok && err != nil || !ok && ke.value.Kind != yaml.ScalarNode {
				w.problem(ke, "must be true or false")
				bad = true
			}
		case "spread":
			if ok && s != client.SpreadDefault && s != client.SpreadMaxAvailability || !ok && ke.value.Kind != yaml.ScalarNode {
				w.problem(ke, "%q is not a spread mode (use %s)", s, client.SpreadMaxAvailability)
				bad = true
			}
		case "routes":
			if !w.xrucheRoutes(ke) {
				bad = true
			}
		default:
			w.problem(ke, "%s", unknownKeyMessage("x-ruche", p.key.Value, "public", "spread", "routes"))
			bad = true
		}
	}
	if bad {
		w.prune(e)
	}
}

// unknownKeyMessage says a key is unknown in a mapping of ruche's, with
// the key meant when one is close.
func unknownKeyMessage(where, key string, keys ...string) string {
	for _, k := range keys {
		if distance(key, k) <= 2 {
			return fmt.Sprintf("unknown key in %s (did you mean %s?)", where, k)
		}
	}
	list := ""
	for i, k := range keys {
		switch {
		case i == 0:
		case i == len(keys)-1:
			list += " and "
		default:
			list += ", "
		}
		list += k
	}
	return fmt.Sprintf("unknown key in %s (it knows %s)", where, list)
}

// xrucheRoutes checks the shape of x-ruche.routes: a list of mappings
// (host, path, port, tls) or shorthand strings.
func (w *walker) xrucheRoutes(e entry) bool {
	const shape = "routes is a list of routes: {host: ..., path: ..., port: ..., tls: ...} or \"host/path:port\""
	switch {
	case e.value.Kind == yaml.ScalarNode && e.value.Tag == "!!null":
		return true
	case e.value.Kind != yaml.SequenceNode:
		w.problem(e, "%s", shape)
		return false
	}
	w.list(e.value, e.path)
	ok := true
	for i, item := range e.value.Content {
		ie := entry{parent: e.value, node: item, value: resolve(item), path: fmt.Sprintf("%s[%d]", e.path, i), line: item.Line}
		w.index[ie.path] = loc{w.file, ie.line}
		switch ie.value.Kind {
		case yaml.ScalarNode:
			continue
		case yaml.MappingNode:
		default:
			w.problem(ie, "%s", shape)
			ok = false
			continue
		}
		for _, p := range pairs(ie.value) {
			ke := entry{parent: p.owner, node: p.key, value: resolve(p.value), path: ie.path + "." + p.key.Value, line: p.key.Line}
			w.index[ke.path] = loc{w.file, ke.line}
			switch p.key.Value {
			case "host", "path", "port":
				if ke.value.Kind != yaml.ScalarNode {
					w.problem(ke, "must be a single value")
					ok = false
				}
			case "tls":
				if !w.xrucheTLS(ke) {
					ok = false
				}
			default:
				w.problem(ke, "%s", unknownKeyMessage("a route", p.key.Value, "host", "path", "port", "tls"))
				ok = false
			}
		}
	}
	return ok
}

// xrucheTLS checks a route's tls: a mode, or {cert: <file>, key: <file>}.
func (w *walker) xrucheTLS(e entry) bool {
	switch e.value.Kind {
	case yaml.ScalarNode:
		return true
	case yaml.MappingNode:
	default:
		w.problem(e, "write acme, internal, none, or {cert: <file>, key: <file>}")
		return false
	}
	ok := true
	for _, p := range pairs(e.value) {
		ke := entry{parent: p.owner, node: p.key, value: resolve(p.value), path: e.path + "." + p.key.Value, line: p.key.Line}
		w.index[ke.path] = loc{w.file, ke.line}
		switch p.key.Value {
		case "cert", "key":
			if ke.value.Kind != yaml.ScalarNode {
				w.problem(ke, "must be a file name")
				ok = false
			}
		default:
			w.problem(ke, "%s", unknownKeyMessage("tls", p.key.Value, "cert", "key"))
			ok = false
		}
	}
	return ok
}
