package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// ndjson writes one JSON value per line and flushes it. Each value must
// be taken by the client within the write timeout: a client that stops
// reading is dropped rather than holding its handler, and the store watch
// behind it (etcd's client buffers a watch's events without bound while
// they are not read), for as long as its connection lives.
type ndjson struct {
	rc      *http.ResponseController
	enc     *json.Encoder
	timeout time.Duration
}

func (s *Server) newNDJSON(w http.ResponseWriter) *ndjson {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	n := &ndjson{rc: http.NewResponseController(w), enc: json.NewEncoder(w), timeout: s.cfg.StreamWriteTimeout}
	// The status goes out now: a follower with nothing to read yet (events
	// -f on a quiet cluster) knows its stream is open.
	_ = n.rc.Flush()
	return n
}

func (n *ndjson) send(v any) error {
	if err := n.rc.SetWriteDeadline(time.Now().Add(n.timeout)); err != nil {
		return err
	}
	if err := n.enc.Encode(v); err != nil {
		return err
	}
	if err := n.rc.Flush(); err != nil {
		return err
	}
	// No deadline while the stream has nothing to send: HTTP/2 resets a
	// stream whose deadline passes even with no write pending, and a
	// quiet stream (events -f, a deploy waiting) must stay open.
	return n.rc.SetWriteDeadline(time.Time{})
}

// watchProject is GET /v1/projects/{project}/watch: the project's view now,
// then again each time it changes, as NDJSON, until the client goes away.
// A project that does not exist (any more) is sent as {"name": ..., "services": null}.
func (s *Server) watchProject(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("project")
	_, rev, err := s.d.Store.List(ctx, store.ClusterKey)
	if err != nil {
		return err
	}
	out := s.newNDJSON(w)
	var last []byte
	sendView := func() error {
		snap, err := s.loadSnapshot(ctx)
		if err != nil {
			return err
		}
		v, _ := snap.project(name)
		b, _ := json.Marshal(v)
		if bytes.Equal(b, last) {
			return nil
		}
		last = b
		return out.send(json.RawMessage(b))
	}
	if err := sendView(); err != nil {
		return nil
	}
	ch := s.d.Store.Watch(ctx, store.Root, rev+1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case resp, ok := <-ch:
			if !ok {
				return nil
			}
			if resp.Err != nil {
				ch = s.d.Store.Watch(ctx, store.Root, 0)
			} else if !concerns(resp.Events, name) {
				continue
			}
			// Let a burst of writes settle into one view.
			time.Sleep(50 * time.Millisecond)
			drain(ch)
			if err := sendView(); err != nil {
				return nil
			}
		}
	}
}

func drain(ch <-chan store.WatchResponse) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// concerns reports whether any event may change the view of project.
func concerns(evs []store.Event, project string) bool {
	for _, ev := range evs {
		k := ev.KV.Key
		switch {
		case strings.HasPrefix(k, store.TasksPrefix), strings.HasPrefix(k, store.TaskStatusPrefix):
			if strings.Contains(k, "/"+project+".") {
				return true
			}
		case strings.HasPrefix(k, store.EventsPrefix), strings.HasPrefix(k, store.TokensPrefix):
		default:
			if strings.Contains(k, "/"+project) {
				return true
			}
		}
	}
	return false
}

// events is GET /v1/events[?follow=true][&since=RFC3339|duration][&project=p]:
// recorded events, oldest first, as NDJSON; with follow, new ones as they come.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q := r.URL.Query()
	since, err := parseSince(q.Get("since"))
	if err != nil {
		return err
	}
	project := q.Get("project")
	follow, err := boolQuery(r, "follow")
	if err != nil {
		return err
	}
	kvs, rev, err := s.d.Store.List(ctx, store.EventsPrefix)
	if err != nil {
		return err
	}
	out := s.newNDJSON(w)
	emit := func(kv store.KV) error {
		var ev client.Event
		if store.Decode(kv, &ev) != nil || ev.Time.Before(since) || (project != "" && ev.Project != project) {
			return nil
		}
		return out.send(ev)
	}
	for _, kv := range kvs {
		if emit(kv) != nil {
			return nil
		}
	}
	if !follow {
		return nil
	}
	for resp := range s.d.Store.Watch(ctx, store.EventsPrefix, rev+1) {
		if resp.Err != nil {
			return nil
		}
		for _, ev := range resp.Events {
			if ev.Type == store.EventPut && emit(ev.KV) != nil {
				return nil
			}
		}
	}
	return nil
}

// logs is GET /v1/projects/{p}/services/{s}/logs[?follow=true][&since=][&tail=N].
func (s *Server) logs(w http.ResponseWriter, r *http.Request) error {
	if s.d.Logs == nil {
		return &apiError{status: http.StatusNotImplemented, code: "not_implemented", msg: "this manager has no log source"}
	}
	project, service := r.PathValue("project"), r.PathValue("service")
	if _, err := s.d.Store.Get(r.Context(), store.ServiceKey(project, service)); err != nil {
		if err == store.ErrNotFound {
			return notFound(fmt.Sprintf("no such service: %s/%s", project, service))
		}
		return err
	}
	q := r.URL.Query()
	since, err := parseSince(q.Get("since"))
	if err != nil {
		return err
	}
	follow, err := boolQuery(r, "follow")
	if err != nil {
		return err
	}
	opts := LogOptions{Follow: follow, Since: since, Tail: -1}
	if t := q.Get("tail"); t != "" {
		if opts.Tail, err = strconv.Atoi(t); err != nil || opts.Tail < 0 {
			return invalid("tail must be a non-negative number of lines, got " + strconv.Quote(t))
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fw := &flushWriter{w: w}
	if err := s.d.Logs.Logs(r.Context(), project, service, opts, fw); err != nil && r.Context().Err() == nil {
		fmt.Fprintf(fw, "error: %v\n", err)
	}
	return nil
}

type flushWriter struct{ w http.ResponseWriter }

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

// parseSince reads an RFC 3339 time or a duration before now ("10m").
func parseSince(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, invalid(fmt.Sprintf("since is how long ago, a positive duration (10m), got %q", v))
		}
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, invalid(fmt.Sprintf("since must be a duration (10m) or an RFC 3339 time, got %q", v))
	}
	return t, nil
}
