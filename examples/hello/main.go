// Command hello is ruche's demo and test application: a small static HTTP
// server that says which replica answered. It runs in a FROM scratch image,
// so it is its own healthcheck client ("hello health").
//
// Environment:
//
//	PORT               listen port (default 8080)
//	HELLO_VERSION      shown in the greeting (POST /echo answers with the body it got,
//	                   GET /bytes/<n> with n bytes)
//	HELLO_UNHEALTHY=1  /healthz answers 500
//	HELLO_CRASH_AFTER  exit 1 after this duration ("3s")
//	HELLO_EXIT         exit at once with this code
//	HELLO_DATA_DIR     PUT/GET /data/<name> writes/reads files there
//	HELLO_READ_FILES=1 GET /file?path=... returns that file
//	HELLO_FETCH=1      GET /fetch?url=... fetches that URL from inside the
//	                   container and answers with its status and body, and
//	                   GET /resolve?name=... answers with the name's
//	                   addresses (tests of the private networks)
//	HELLO_QUIET=1      no log line per request (benchmarks: the line costs
//	                   more than the answer once Docker carries it to disk)
//
// GET /ws is a WebSocket echo (ws.go).
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(health(port))
	}
	if v := os.Getenv("HELLO_EXIT"); v != "" {
		code, err := strconv.Atoi(v)
		if err != nil {
			log.Fatalf("HELLO_EXIT=%q: %v", v, err)
		}
		log.Printf("exiting with code %d as asked", code)
		os.Exit(code)
	}
	if v := os.Getenv("HELLO_CRASH_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Fatalf("HELLO_CRASH_AFTER=%q: %v", v, err)
		}
		time.AfterFunc(d, func() {
			log.Printf("crashing after %s as asked", d)
			os.Exit(1)
		})
	}
	srv := &http.Server{Addr: ":" + port, Handler: newHandler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("listening on :%s", port)
	if extra := os.Getenv("HELLO_EXTRA_PORT"); extra != "" {
		// A second port with the same answers (tests of routes to a port
		// other than the first).
		esrv := &http.Server{Addr: ":" + extra, Handler: newHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- esrv.ListenAndServe() }()
		defer esrv.Close()
		log.Printf("listening on :%s too", extra)
	}
	select {
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	log.Printf("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Printf("shutdown: %v", err)
	}
	ws.shutdown(sctx) // Shutdown does not know hijacked connections
	log.Printf("bye")
}

// health is the healthcheck client: exit 0 when /healthz answers 200.
func health(port string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthz:", resp.Status)
		return 1
	}
	return 0
}

// ws holds the open WebSockets of GET /ws, closed on shutdown.
var ws = newSockets()

// filler is the body of GET /bytes/{n} (benchmarks: a fixed-size answer).
var filler = bytes.Repeat([]byte("x"), 1<<20)

func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s.%s on %s (version %s)\n",
			os.Getenv("RUCHE_SERVICE"), os.Getenv("RUCHE_REPLICA"), os.Getenv("RUCHE_NODE"), os.Getenv("HELLO_VERSION"))
	})
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n > 1<<20 {
			http.Error(w, "n must be 0 to 1048576", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(filler[:n])
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, io.LimitReader(r.Body, 1<<20))
	})
	// GET /slow/{ms}: a long answer (tests of draining). Its first line
	// goes out at once, its last one, naming the replica, after ms
	// milliseconds: an answer cut in between is incomplete.
	mux.HandleFunc("GET /slow/{ms}", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.PathValue("ms"))
		if err != nil || ms < 0 || ms > 600_000 {
			http.Error(w, "ms must be 0 to 600000", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "started")
		http.NewResponseController(w).Flush()
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "done by %s.%s\n", os.Getenv("RUCHE_SERVICE"), os.Getenv("RUCHE_REPLICA"))
	})
	mux.Handle("GET /ws", ws)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("HELLO_UNHEALTHY") == "1" {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if dir := os.Getenv("HELLO_DATA_DIR"); dir != "" {
		mux.HandleFunc("PUT /data/{name}", func(w http.ResponseWriter, r *http.Request) {
			p, ok := dataPath(dir, r.PathValue("name"))
			if !ok {
				http.Error(w, "bad name", http.StatusBadRequest)
				return
			}
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err == nil {
				err = os.WriteFile(p, b, 0o644)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		mux.HandleFunc("GET /data/{name}", func(w http.ResponseWriter, r *http.Request) {
			p, ok := dataPath(dir, r.PathValue("name"))
			if !ok {
				http.Error(w, "bad name", http.StatusBadRequest)
				return
			}
			serveFile(w, p)
		})
	}
	if os.Getenv("HELLO_READ_FILES") == "1" {
		mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
			serveFile(w, r.URL.Query().Get("path"))
		})
	}
	if os.Getenv("HELLO_FETCH") == "1" {
		mux.HandleFunc("GET /fetch", fetch)
		mux.HandleFunc("GET /resolve", resolve)
	}
	if os.Getenv("HELLO_QUIET") == "1" {
		return mux
	}
	return logRequests(mux)
}

func dataPath(dir, name string) (string, bool) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", false
	}
	return filepath.Join(dir, name), true
}

func serveFile(w http.ResponseWriter, p string) {
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		http.Error(w, "not found", http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Write(b)
	}
}

func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			log.Printf("%s %s", r.Method, r.URL.RequestURI())
		}
		h.ServeHTTP(w, r)
	})
}

// fetch gets a URL (3 s at most) and relays the status and body; a
// failure is a 502 naming the error.
func fetch(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL.Query().Get("url"), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "fetch: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	fmt.Fprintf(w, "%d ", resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}

// resolve answers with a name's addresses, one per line, sorted by the
// resolver; a failure is a 502 naming the error.
func resolve(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, r.URL.Query().Get("name"))
	if err != nil {
		http.Error(w, "resolve: "+err.Error(), http.StatusBadGateway)
		return
	}
	fmt.Fprintln(w, strings.Join(addrs, "\n"))
}
