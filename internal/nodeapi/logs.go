package nodeapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ruche-platform/ruche/internal/agent"
)

// logs is GET /v1/logs?project=&service=[&follow=true][&since=RFC3339Nano][&tail=N]:
// the output of the service's replicas on this node, as text lines prefixed
// with the replica ("web.2 | "). A failure after the first byte is one last
// line "error: ..." (a replica's line always carries its prefix).
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	project, service := q.Get("project"), q.Get("service")
	if project == "" || service == "" {
		http.Error(w, "project and service are required", http.StatusBadRequest)
		return
	}
	opts, err := parseLogOptions(q.Get("follow"), q.Get("since"), q.Get("tail"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.d.Logs == nil {
		http.Error(w, "this node serves no logs", http.StatusNotImplemented)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fw := &flushWriter{w: w}
	fw.flush()
	if err := s.d.Logs.Logs(r.Context(), project, service, opts, fw); err != nil && r.Context().Err() == nil {
		fmt.Fprintf(fw, "error: %v\n", err)
	}
}

func parseLogOptions(follow, since, tail string) (agent.LogOptions, error) {
	var o agent.LogOptions
	o.Follow = follow == "true" || follow == "1"
	if since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return o, fmt.Errorf("since must be an RFC 3339 time, got %q", since)
		}
		o.Since = t
	}
	if tail != "" {
		n, err := strconv.Atoi(tail)
		if err != nil {
			return o, fmt.Errorf("tail must be a number of lines, got %q", tail)
		}
		o.Tail = n
	}
	return o, nil
}

type flushWriter struct{ w http.ResponseWriter }

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.flush()
	return n, err
}

func (f *flushWriter) flush() {
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
}
