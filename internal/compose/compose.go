// Package compose loads compose files into a client.ProjectSpec.
//
// It parses with compose-go, the reference implementation (interpolation,
// merging of several files, env_file, normalisation, schema validation),
// after walking each file's YAML itself so that every key ruche does not
// honour is reported with its line instead of being ignored. README.md is
// the operator-facing list of what is honoured and what is refused.
package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ruche-platform/ruche/client"
	"gopkg.in/yaml.v3"
)

// Options says what to load.
type Options struct {
	// Files are compose files, merged in order like
	// `docker compose -f a.yml -f b.yml`.
	Files []string
	// ProjectName is -p. Without it, the top-level name: of the files;
	// without that, the first file's directory name, normalised (lowercase,
	// '_' turned into '-', other characters dropped).
	ProjectName string
	// WorkingDir resolves relative paths (bind sources, env_file, secret
	// and config files). Default: the first file's directory.
	WorkingDir string
	// Env is the interpolation environment. Nil means os.Environ() plus
	// the .env file of WorkingDir, if any (the process environment wins).
	Env map[string]string
	// Warn, when set, receives what does not stop a deploy but deserves a
	// look: an obsolete version: key, a dropped SELinux mount option, a
	// variable that is not set and reads as an empty string.
	Warn func(Problem)
}

// Load reads the compose files of opts into a project spec. The spec has
// passed client.ProjectSpec.Validate. Problems with the files come back as
// one *Error listing all of them; other errors (a file that cannot be read)
// are returned wrapped.
func Load(ctx context.Context, opts Options) (*client.ProjectSpec, error) {
	if len(opts.Files) == 0 {
		return nil, ErrNoFiles
	}
	wd := opts.WorkingDir
	if wd == "" {
		wd = filepath.Dir(opts.Files[0])
	}
	wd, err := filepath.Abs(wd)
	if err != nil {
		return nil, fmt.Errorf("resolve working directory: %w", err)
	}
	env := opts.Env
	if env == nil {
		if env, err = defaultEnv(wd); err != nil {
			return nil, err
		}
	}
	var inputs []input
	for _, f := range opts.Files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read compose file: %w", err)
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("read compose file: %w", err)
		}
		inputs = append(inputs, input{name: f, path: abs, data: data})
	}
	dirName := filepath.Base(filepath.Dir(inputs[0].path))
	l := &load{mode: readFiles, workingDir: wd, env: env, warn: opts.Warn}
	return l.run(ctx, inputs, opts.ProjectName, dirName)
}

// LoadBytes loads one compose document with no file access, for the API
// server: env_file, label_file, secret and config file: and relative bind
// sources are problems naming the key and line. env is the interpolation
// environment, used as given (the server's own environment never leaks in).
// projectName, when empty, comes from the document's name:.
func LoadBytes(ctx context.Context, filename string, data []byte, projectName string, env map[string]string) (*client.ProjectSpec, error) {
	if env == nil {
		env = map[string]string{}
	}
	l := &load{mode: noFiles, env: env}
	return l.run(ctx, []input{{name: filename, path: filename, data: data}}, projectName, "")
}

type input struct {
	name string // as the user wrote it, for messages
	path string // absolute, for compose-go
	data []byte
}

// load is one call of Load or LoadBytes.
type load struct {
	mode       mode
	workingDir string
	env        map[string]string
	warn       func(Problem)

	inputs   []input
	index    map[string]loc
	items    map[string]string // see walker.items
	pruned   []string          // paths the walkers pruned
	renames  map[string]string // spec path -> compose path, see renameItems
	problems []Problem
	warnings []Problem // found while converting, see flushWarnings
}

func (l *load) run(ctx context.Context, inputs []input, explicitName, dirName string) (*client.ProjectSpec, error) {
	l.inputs = inputs
	l.index = map[string]loc{}
	l.renames = map[string]string{}
	l.items = map[string]string{}
	var (
		pruned   []types.ConfigFile
		fileName string
		syntax   bool
	)
	for _, in := range inputs {
		w := newWalker(in.name, l.mode, l.workingDir, l.env, l.index, l.items)
		docs, err := parseYAML(in.data)
		if err != nil {
			l.problems = append(l.problems, syntaxProblem(in.name, err))
			syntax = true
			continue
		}
		for _, d := range docs {
			w.document(d)
		}
		content, err := encodeYAML(docs)
		if err != nil {
			return nil, fmt.Errorf("re-encode %s: %w", in.name, err)
		}
		l.problems = append(l.problems, w.problems...)
		l.pruned = append(l.pruned, w.pruned...)
		syntax = syntax || w.fatal
		if l.warn != nil {
			for _, p := range w.warnings {
				l.warn(p)
			}
		}
		if w.name != "" {
			fileName = w.name
		}
		pruned = append(pruned, types.ConfigFile{Filename: in.path, Content: content})
	}
	if syntax {
		return nil, l.result(nil)
	}

	name := explicitName
	switch {
	case name != "":
	case fileName != "":
		name = fileName
	case dirName != "":
		if name = normaliseDirName(dirName); name == "" {
			l.problems = append(l.problems, Problem{File: inputs[0].name, Path: "name",
				Message: fmt.Sprintf("cannot make a project name of directory %q: pass -p or set name:", dirName)})
			return nil, l.result(nil)
		}
	default:
		l.problems = append(l.problems, Problem{File: inputs[0].name, Path: "name", Message: "the project needs a name: set name: or pass one"})
		return nil, l.result(nil)
	}

	project, err := l.compose(ctx, pruned, name)
	if err != nil {
		if p := l.composeProblem(err); !l.causedByPruning(p.Path) || len(l.problems) == 0 {
			l.problems = append(l.problems, p)
		}
		return nil, l.result(nil)
	}
	spec := l.convert(project)
	spec.Name = name
	if err := l.result(spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// result validates spec, if any, and returns every problem found so far as
// an *Error, or nil when there is none.
func (l *load) result(spec *client.ProjectSpec) error {
	if spec != nil {
		var verr *client.ValidationError
		if err := spec.Validate(); errors.As(err, &verr) {
			for _, s := range verr.Problems {
				l.problems = append(l.problems, l.locate(s))
			}
		}
	}
	if len(l.problems) == 0 {
		return nil
	}
	names := make([]string, len(l.inputs))
	for i, in := range l.inputs {
		names[i] = in.name
	}
	return &Error{Problems: sortProblems(l.problems, names)}
}

// parseYAML reads every document of a file as nodes.
func parseYAML(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &n)
	}
}

// encodeYAML writes documents back as YAML, for compose-go. The result is
// never nil: compose-go reads the file from disk when Content is nil,
// which LoadBytes must never let it do.
func encodeYAML(docs []*yaml.Node) ([]byte, error) {
	if len(docs) == 0 {
		return []byte{}, nil
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns a YAML parse error into a problem with its line.
func syntaxProblem(file string, err error) Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Message: "invalid YAML: " + m[2]}
	}
	return Problem{File: file, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// compose hands the pruned files to compose-go.
func (l *load) compose(ctx context.Context, files []types.ConfigFile, name string) (*types.Project, error) {
	composeName := loader.NormalizeProjectName(name)
	if composeName == "" {
		composeName = "invalid" // Validate reports the real name
	}
	details := types.ConfigDetails{
		WorkingDir:  l.workingDir,
		ConfigFiles: files,
		Environment: maps.Clone(l.env), // compose-go adds COMPOSE_PROJECT_NAME to it
	}
	if details.Environment == nil {
		details.Environment = map[string]string{}
	}
	return loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(composeName, true)
		o.SkipConsistencyCheck = true // Validate checks references, with paths
		o.ResolvePaths = l.mode == readFiles
		o.SkipInclude = true // include: is refused and pruned
		o.Interpolate.Substitute = func(s string, m template.Mapping) (string, error) {
			return template.SubstituteWithOptions(s, m, template.WithoutLogging)
		}
	})
}

var (
	validatingPrefix = regexp.MustCompile(`^validating (.*?): `)
	interpolating    = regexp.MustCompile(`^error while interpolating (\S+): `)
	indexSegment     = regexp.MustCompile(`\.(\d+)(\.|$)`)
)

// composeProblem turns a compose-go error into a problem, finding the key
// and line it is about when the message starts with a path.
func (l *load) composeProblem(err error) Problem {
	msg := err.Error()
	file := l.inputs[0].name
	if m := validatingPrefix.FindStringSubmatch(msg); m != nil {
		for _, in := range l.inputs {
			if in.path == m[1] {
				file = in.name
			}
		}
		msg = msg[len(m[0]):]
	}
	var path string
	if m := interpolating.FindStringSubmatch(msg); m != nil {
		path, msg = m[1], msg[len(m[0]):]
	} else {
		first, rest, _ := strings.Cut(msg, " ")
		path, msg = strings.TrimSuffix(first, ":"), rest
	}
	for indexSegment.MatchString(path) {
		path = indexSegment.ReplaceAllString(path, "[$1]$2")
	}
	if at, ok := l.lookupLoc(path); ok {
		return Problem{File: at.file, Line: at.line, Path: path, Message: msg}
	}
	return Problem{File: file, Message: err.Error()}
}

// causedByPruning says whether a compose-go problem about path comes from
// the walker pruning a key below it (a secret whose refused file: was
// removed has no source left): the walker's problem says it better.
func (l *load) causedByPruning(path string) bool {
	if path == "" {
		return false
	}
	for _, p := range l.pruned {
		if strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

// locate turns a "path: message" problem of client.Validate into a
// Problem, at the line of the deepest key of path written in the files.
func (l *load) locate(s string) Problem {
	path, msg, ok := strings.Cut(s, ": ")
	if !ok {
		return Problem{File: l.inputs[0].name, Message: s}
	}
	if r, ok := l.renames[path]; ok {
		path = r
	}
	if at, ok := l.lookupLoc(path); ok {
		return Problem{File: at.file, Line: at.line, Path: path, Message: msg}
	}
	return Problem{File: l.inputs[0].name, Path: path, Message: msg}
}

// lookupLoc finds where path, or its closest written parent, was written.
func (l *load) lookupLoc(path string) (loc, bool) {
	for p := path; p != ""; {
		if at, ok := l.index[p]; ok {
			return at, true
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			break
		}
		p = p[:i]
	}
	return loc{}, false
}
