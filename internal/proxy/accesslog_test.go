package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSuffix(s.b.String(), "\n"), "\n")
}

func TestAccessLog(t *testing.T) {
	var buf syncBuffer
	p := newTestProxy(t, Config{AccessLog: &buf})
	p.randN = func(int) int { return 0 }
	tab := oneRoute("app.test", "", deadAddr(t), backend(t, named("web")))
	p.Update(tab)
	r := httpRequest("GET", "http://app.test/p\"ath?secret=1")
	r.RemoteAddr = "192.0.2.1:5555"
	p.ServeHTTP(newRecorder(), r)
	do(p, "GET", "http://nowhere.test/", "")

	lines := buf.lines()
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var e struct {
		Time     time.Time
		Client   string
		Method   string
		Host     string
		Path     string
		Proto    string
		Status   int
		Bytes    int64
		Duration float64
		Route    string
		Upstream string
		Retries  int
		Error    string
	}
	dec := json.NewDecoder(strings.NewReader(lines[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	if e.Client != "192.0.2.1" || e.Method != "GET" || e.Host != "app.test" || e.Path != `/p"ath` || e.Proto != "HTTP/1.1" ||
		e.Status != 200 || e.Bytes != 3 || e.Route != "p/web" || e.Upstream != "t1" || e.Retries != 1 || e.Error != "" {
		t.Errorf("entry: %+v", e)
	}
	if e.Time.IsZero() || time.Since(e.Time) > time.Hour || e.Duration <= 0 {
		t.Errorf("time %v, duration %v", e.Time, e.Duration)
	}
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil || e.Status != 404 || e.Route != "" {
		t.Errorf("404 line: %+v %v", e, err)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "tab\tnl\n\x00\x1f\x7f", "café ☕", "bad \xff\xfe utf8", "</script>"} {
		var got string
		b := appendJSONString(nil, s)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("%q: invalid JSON %s: %v", s, b, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if strings.Contains(s, "\xff\xfe") {
			want = strings.ReplaceAll(s, "\xff\xfe", "\uFFFD\uFFFD")
		}
		if got != want {
			t.Errorf("round trip of %q: got %q", s, got)
		}
	}
}

func TestAccessLogConcurrentLines(t *testing.T) {
	var buf syncBuffer
	l := &accessLog{w: &buf}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				l.write(&logEntry{start: time.Now(), method: "GET", path: strings.Repeat("x", i*100), status: 200})
			}
		})
	}
	wg.Wait()
	lines := buf.lines()
	if len(lines) != 1600 {
		t.Fatalf("got %d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("invalid line %q", l)
		}
	}
}
