package compose

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinel errors. Every *Error wraps ErrInvalid.
var (
	// ErrInvalid: the compose file has problems; the *Error lists them.
	ErrInvalid = errors.New("invalid compose file")
	// ErrNoFiles: Load was called without a file.
	ErrNoFiles = errors.New("no compose file given")
)

// Problem is one thing wrong with a compose file.
type Problem struct {
	File string // as given to Load, or LoadBytes' filename
	Line int    // 1-based; 0 when unknown
	// Path is the compose key, like "services.web.privileged" or
	// "services.web.ports[1]"; empty for a syntax error.
	Path    string
	Message string
}

// String reads "compose.yml:12: services.web.privileged: message", leaving
// out what is unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error lists every problem of a set of compose files at once, each with
// file:line when known.
type Error struct {
	Problems []Problem
}

// Error returns one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

// Lines returns one string per problem, for client.Error.Details.
func (e *Error) Lines() []string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return lines
}

// sortProblems orders problems by file (in the order files were given),
// then line, keeping problems without a line after the others of their
// file, and drops exact duplicates (a key merged into several services
// through a YAML anchor is reported once).
func sortProblems(ps []Problem, files []string) []Problem {
	rank := func(f string) int {
		if i := slices.Index(files, f); i >= 0 {
			return i
		}
		return len(files)
	}
	line := func(l int) int {
		if l == 0 {
			return int(^uint(0) >> 1)
		}
		return l
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(rank(a.File), rank(b.File)),
			cmp.Compare(line(a.Line), line(b.Line)),
		)
	})
	return slices.Compact(ps)
}
