package main

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RUCHE_SERVICE", "web")
	t.Setenv("RUCHE_REPLICA", "2")
	t.Setenv("RUCHE_NODE", "n1")
	t.Setenv("HELLO_VERSION", "v3")
	t.Setenv("HELLO_DATA_DIR", dir)
	t.Setenv("HELLO_READ_FILES", "1")
	srv := httptest.NewServer(newHandler())
	defer srv.Close()

	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantBody                 string
	}{
		{"greeting", "GET", "/", "", 200, "hello from web.2 on n1 (version v3)\n"},
		{"healthz", "GET", "/healthz", "", 200, "ok\n"},
		{"put data", "PUT", "/data/x", "stored", 204, ""},
		{"get data", "GET", "/data/x", "", 200, "stored"},
		{"missing data", "GET", "/data/nope", "", 404, "not found\n"},
		{"bad name", "PUT", "/data/a%5Cb", "", 400, ""},
		{"read file", "GET", "/file?path=" + dir + "/x", "", 200, "stored"},
		{"unknown path", "GET", "/nope", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(tt.method, tt.path, tt.body)
			if code != tt.wantCode {
				t.Errorf("status: got %d, want %d (body %q)", code, tt.wantCode, body)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body: got %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestUnhealthy(t *testing.T) {
	t.Setenv("HELLO_UNHEALTHY", "1")
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, 500; got != want {
		t.Errorf("got %d, want %d", got, want)
	}
}

func TestHealthCommand(t *testing.T) {
	for _, unhealthy := range []string{"", "1"} {
		t.Run("unhealthy="+unhealthy, func(t *testing.T) {
			t.Setenv("HELLO_UNHEALTHY", unhealthy)
			srv := httptest.NewServer(newHandler())
			defer srv.Close()
			port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
			want := 0
			if unhealthy == "1" {
				want = 1
			}
			if got := health(port); got != want {
				t.Errorf("got exit %d, want %d", got, want)
			}
		})
	}
}

func TestRequestLog(t *testing.T) {
	tests := []struct {
		quiet string
		want  string
	}{
		{"", "GET /bytes/3\n"},
		{"1", ""},
	}
	for _, tt := range tests {
		t.Run("HELLO_QUIET="+tt.quiet, func(t *testing.T) {
			t.Setenv("HELLO_QUIET", tt.quiet)
			var buf strings.Builder
			flags := log.Flags()
			log.SetOutput(&buf)
			log.SetFlags(0)
			defer func() { log.SetOutput(os.Stderr); log.SetFlags(flags) }()
			srv := httptest.NewServer(newHandler())
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/bytes/3")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			srv.Close()
			if got := buf.String(); got != tt.want {
				t.Errorf("log: got %q, want %q", got, tt.want)
			}
		})
	}
}
