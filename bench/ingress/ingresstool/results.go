package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// result is one line of results.tsv: kind, label, then key=value fields
// in the order they were set.
type result struct {
	kind, label string
	keys        []string
	vals        map[string]string
}

func newResult(kind, label string) *result {
	return &result{kind: kind, label: label, vals: map[string]string{}}
}

func (r *result) set(key string, v any) *result {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		s = strconv.Itoa(v)
	case time.Duration: // milliseconds, microsecond resolution
		s = strconv.FormatFloat(float64(v.Microseconds())/1000, 'f', 3, 64)
	default:
		s = fmt.Sprint(v)
	}
	if _, ok := r.vals[key]; !ok {
		r.keys = append(r.keys, key)
	}
	r.vals[key] = sanitizeField(s)
	return r
}

func sanitizeField(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
}

func (r *result) String() string {
	var b strings.Builder
	b.WriteString(r.kind)
	b.WriteByte('\t')
	b.WriteString(r.label)
	for _, k := range r.keys {
		b.WriteByte('\t')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(r.vals[k])
	}
	return b.String()
}

func parseResult(line string) (*result, error) {
	f := strings.Split(line, "\t")
	if len(f) < 2 || f[0] == "" {
		return nil, fmt.Errorf("%w: result line %q: want kind, label, key=value...", errParse, line)
	}
	r := newResult(f[0], f[1])
	for _, kv := range f[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: result line %q: field %q is not key=value", errParse, line, kv)
		}
		r.set(k, v)
	}
	return r, nil
}

func (r *result) str(key string) string { return r.vals[key] }

// num is a numeric field; ok is false when it is missing or not a number.
func (r *result) num(key string) (float64, bool) {
	s, ok := r.vals[key]
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// counts reads a "kind=n;kind=n" field.
func (r *result) counts(key string) map[string]int {
	out := map[string]int{}
	for _, kv := range strings.Split(r.vals[key], ";") {
		i := strings.LastIndexByte(kv, '=')
		if i <= 0 {
			continue
		}
		if n, err := strconv.Atoi(kv[i+1:]); err == nil {
			out[kv[:i]] += n
		}
	}
	return out
}
