package compose

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/template"
	"gopkg.in/yaml.v3"
)

// mode says what the loader may read besides the compose text itself.
type mode int

const (
	// readFiles is Load: env_file, secret and config files and relative
	// bind sources are the client's files and are read or resolved.
	readFiles mode = iota
	// noFiles is LoadBytes, on the API server: any reference to the
	// client's files is a problem.
	noFiles
)

// loc is where a key was written.
type loc struct {
	file string
	line int
}

// walker checks one compose file, node by node, before compose-go sees it:
// it reports every key ruche does not honour with its line, prunes those
// keys so compose-go can still load the rest (and report what it finds),
// and records where each key was written so later problems get a line.
type walker struct {
	file  string // as the user named it
	mode  mode
	dir   string // the working directory, for the files of readFiles
	env   map[string]string
	index map[string]loc // concrete path -> where it was written, shared by all files
	// items maps "list[i]", i counted after pruning, to the path of the
	// item as written: what compose-go's list items correspond to.
	items  map[string]string
	seqs   []*yaml.Node
	seqAt  map[*yaml.Node]string // list -> its path
	itemAt map[*yaml.Node]string // item -> its path as written

	problems []Problem
	warnings []Problem
	prunes   []prune
	pruned   []string // paths of the pruned entries

	name       string // the top-level name:, interpolated
	fatal      bool   // the file cannot be handed to compose-go
	warnedVars map[string]bool
}

// entry is one value met by the walk: a key's value in a mapping, or an
// item of a list.
type entry struct {
	parent  *yaml.Node // the mapping or sequence holding the value
	node    *yaml.Node // what to remove from parent to prune: the key, or the item
	value   *yaml.Node // the value, aliases resolved
	path    string     // concrete: "services.web.ports[1]"
	pattern string     // as in rules: "services.*.ports.[]"
	line    int
}

type prune struct{ parent, node *yaml.Node }

func newWalker(file string, m mode, dir string, env map[string]string, index map[string]loc, items map[string]string) *walker {
	return &walker{file: file, mode: m, dir: dir, env: env, index: index, items: items,
		seqAt: map[*yaml.Node]string{}, itemAt: map[*yaml.Node]string{}, warnedVars: map[string]bool{}}
}

// list records a list and its items as written, before pruning.
func (w *walker) list(seq *yaml.Node, path string) {
	if _, seen := w.seqAt[seq]; !seen {
		w.seqs = append(w.seqs, seq)
	}
	w.seqAt[seq] = path
	for i, item := range seq.Content {
		w.itemAt[item] = fmt.Sprintf("%s[%d]", path, i)
	}
}

func (w *walker) problem(e entry, format string, args ...any) {
	w.problems = append(w.problems, Problem{File: w.file, Line: e.line, Path: e.path, Message: fmt.Sprintf(format, args...)})
}

func (w *walker) refuse(e entry, reason string) {
	w.problem(e, "not supported by ruche (%s)", reason)
	w.prune(e)
}

func (w *walker) warn(e entry, format string, args ...any) {
	w.warnings = append(w.warnings, Problem{File: w.file, Line: e.line, Path: e.path, Message: fmt.Sprintf(format, args...)})
}

// prune removes the entry from the document handed to compose-go, once the
// walk is over.
func (w *walker) prune(e entry) {
	w.prunes = append(w.prunes, prune{e.parent, e.node})
	w.pruned = append(w.pruned, e.path)
}

// lookupEnv is the interpolation mapping.
func (w *walker) lookupEnv(name string) (string, bool) {
	v, ok := w.env[name]
	return v, ok
}

// interp returns a scalar's value with variables substituted, as compose-go
// will substitute them. It returns false for a mapping or a list, and for
// a value compose-go will refuse to interpolate (it reports that itself).
func (w *walker) interp(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", false
	}
	s, err := template.SubstituteWithOptions(n.Value, w.lookupEnv, template.WithoutLogging)
	if err != nil {
		return "", false
	}
	return s, true
}

// document walks one YAML document of the file.
func (w *walker) document(doc *yaml.Node) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return
	}
	if root.Kind != yaml.MappingNode {
		w.problems = append(w.problems, Problem{File: w.file, Line: root.Line, Message: "a compose file is a mapping of top-level keys (services:, volumes:, ...)"})
		w.fatal = true
		return
	}
	w.mapping(root, "", "")
	w.scanVars(doc)
	for _, p := range w.prunes {
		remove(p.parent, p.node)
	}
	w.prunes = nil
	for _, seq := range w.seqs {
		for i, item := range seq.Content {
			w.items[fmt.Sprintf("%s[%d]", w.seqAt[seq], i)] = w.itemAt[item]
		}
	}
	w.seqs = nil
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// remove takes node (a key with its value, or a list item) out of parent.
func remove(parent, node *yaml.Node) {
	c := parent.Content
	switch parent.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(c); i += 2 {
			if c[i] == node {
				parent.Content = append(c[:i:i], c[i+2:]...)
				return
			}
		}
	case yaml.SequenceNode:
		for i := range c {
			if c[i] == node {
				parent.Content = append(c[:i:i], c[i+1:]...)
				return
			}
		}
	}
}

// pair is one key of a mapping, written there or merged in with <<.
type pair struct {
	owner      *yaml.Node // the mapping that holds it
	key, value *yaml.Node
	merged     bool
}

// pairs lists a mapping's keys as YAML reads them: its own keys, then the
// keys merged from << anchors that it does not override.
func pairs(m *yaml.Node) []pair {
	var own, merged []pair
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag == "!!merge" {
			sources := []*yaml.Node{v}
			if rv := resolve(v); rv.Kind == yaml.SequenceNode {
				sources = rv.Content
			}
			for _, s := range sources {
				if s = resolve(s); s.Kind == yaml.MappingNode {
					for _, p := range pairs(s) {
						p.merged = true
						merged = append(merged, p)
					}
				}
			}
			continue
		}
		own = append(own, pair{owner: m, key: k, value: v})
	}
	seen := map[string]bool{}
	for _, p := range own {
		seen[p.key.Value] = true
	}
	out := own
	for _, p := range merged {
		if !seen[p.key.Value] {
			seen[p.key.Value] = true
			out = append(out, p)
		}
	}
	return out
}

func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping walks the keys of m, a mapping at pattern.
func (w *walker) mapping(m *yaml.Node, pattern, path string) {
	firstLine := map[string]int{}
	for _, p := range pairs(m) {
		k := p.key.Value
		e := entry{parent: p.owner, node: p.key, value: resolve(p.value), path: childPath(path, k), line: p.key.Line}
		if !p.merged {
			if first, dup := firstLine[k]; dup {
				w.problem(e, "duplicate key (first written at line %d)", first)
				w.prune(e)
				continue
			}
			firstLine[k] = p.key.Line
		}
		w.index[e.path] = loc{w.file, e.line}

		if strings.HasPrefix(k, "x-") && !userDefined[pattern] {
			switch {
			case k == "x-ruche" && pattern == "services.*":
				w.xruche(e)
			case k == "x-ruche":
				w.problem(e, "x-ruche is read under a service only")
				w.prune(e)
			case pattern == "services.*" && distance(k, "x-ruche") <= 2:
				// A typo would lose the routes and settings in silence.
				w.warn(e, "an extension, ignored: did you mean x-ruche?")
			}
			continue // an extension: compose and ruche ignore it by definition
		}
		kp, r, ok := lookup(pattern, k)
		if !ok {
			msg := "unknown key"
			if s := suggest(pattern, k); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			w.problem(e, "%s", msg)
			w.prune(e)
			continue
		}
		e.pattern = kp
		if r.refuse != "" {
			w.refuse(e, r.refuse)
			continue
		}
		if r.check != nil && !r.check(w, e) {
			continue
		}
		if !r.free {
			w.node(e.value, kp, e.path)
		}
	}
}

// node walks below a value, when compose has keys there.
func (w *walker) node(v *yaml.Node, pattern, path string) {
	switch v.Kind {
	case yaml.MappingNode:
		if parents()[pattern] {
			w.mapping(v, pattern, path)
		}
	case yaml.SequenceNode:
		ip := pattern + ".[]"
		r, hasRule := rules[ip]
		if !hasRule && !parents()[ip] {
			return
		}
		w.list(v, path)
		for i, item := range v.Content {
			e := entry{parent: v, node: item, value: resolve(item), path: fmt.Sprintf("%s[%d]", path, i), pattern: ip, line: item.Line}
			w.index[e.path] = loc{w.file, e.line}
			if r.check != nil && !r.check(w, e) {
				continue
			}
			if e.value.Kind == yaml.MappingNode && parents()[ip] {
				w.mapping(e.value, ip, e.path)
			}
		}
	}
}

// varRef finds variable references: $$ (an escaped $), ${NAME...} and
// $NAME. Only a bare ${NAME} or $NAME reads as empty when NAME is unset;
// ${NAME:-default} and friends say what they want.
var varRef = regexp.MustCompile(`\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)

// scanVars warns once per variable that a bare reference reads as an
// empty string because the variable is not set, as docker compose does.
func (w *walker) scanVars(n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		for _, m := range varRef.FindAllStringSubmatch(n.Value, -1) {
			name := m[2] + m[3]
			if name == "" || w.warnedVars[name] {
				continue
			}
			if _, ok := w.env[name]; !ok {
				w.warnedVars[name] = true
				w.warnings = append(w.warnings, Problem{File: w.file, Line: n.Line,
					Message: fmt.Sprintf("variable %s is not set: it reads as an empty string", name)})
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			w.scanVars(n.Content[i])
		}
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			w.scanVars(c)
		}
	}
}
