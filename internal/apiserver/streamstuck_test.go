package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/events"
	"github.com/ruche-platform/ruche/internal/secret"
	"github.com/ruche-platform/ruche/internal/store"
)

// stuckEnv is an API server whose connection closes are reported on
// closed.
func stuckEnv(t *testing.T, cfg Config) (*store.Memory, string, <-chan struct{}) {
	t.Helper()
	st, srv := streamServer(t, cfg)
	closed := make(chan struct{}, 16)
	srv.Config.ConnState = func(_ net.Conn, cs http.ConnState) {
		if cs == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return st, srv.Listener.Addr().String(), closed
}

// streamServer is an API server with an admin token, not started.
func streamServer(t *testing.T, cfg Config) (*store.Memory, *httptest.Server) {
	t.Helper()
	st := store.NewMemory()
	t.Cleanup(st.Close)
	ctx := context.Background()
	st.Txn(ctx, nil, store.Put(store.TokenKey(HashToken(token)), store.Encode(store.TokenRecord{Name: "admin", Role: "admin"})))
	box, _ := secret.New(bytes.Repeat([]byte{7}, 32))
	log := slog.New(slog.DiscardHandler)
	s := New(cfg, Deps{Store: st, Secrets: box, Log: log, Events: events.NewRecorder(st, log)})
	return st, httptest.NewUnstartedServer(s.Handler())
}

// TestStuckStreamReaderDropped: a client that stops reading a stream
// (events -f here; project watches and agent streams write the same way) while the server has more to send is
// dropped after the write timeout. Before, the handler waited in its write
// for as long as the connection lived, with its store watch open: with
// etcd, the client library buffers every event for a watcher that is not
// read, so the manager's memory grew with each write to the store.
func TestStuckStreamReaderDropped(t *testing.T) {
	for _, path := range []string{"/v1/events?follow=true"} {
		t.Run(path, func(t *testing.T) {
			st, addr, closed := stuckEnv(t, Config{StreamWriteTimeout: 300 * time.Millisecond})
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", path, token)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				// Writes the stream has to send: events of 16 KiB, until
				// the test ends.
				msg := strings.Repeat("x", 16<<10)
				for i := 0; ctx.Err() == nil; i++ {
					ev := client.Event{Time: time.Now(), Type: "project", Project: "shop", Action: "test", Message: msg}
					st.Txn(ctx, nil, store.Put(fmt.Sprintf("%s%020d", store.EventsPrefix, i), store.Encode(ev)))
					time.Sleep(2 * time.Millisecond)
				}
			}()
			// Read the status line, then never read again.
			if l, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(l, " 200 ") {
				t.Fatalf("status line: %q %v", l, err)
			}
			select {
			case <-closed:
			case <-time.After(15 * time.Second):
				t.Fatal("a client that reads nothing is still served after 15s (write timeout 300ms)")
			}
		})
	}
}

// TestStreamHeadersAtOnce: a stream's status line goes out when it opens,
// not with its first value: events -f on a quiet cluster knows it is
// following.
func TestStreamHeadersAtOnce(t *testing.T) {
	_, addr, _ := stuckEnv(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/v1/events?follow=true&since=1ns", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no status line within 5 s of opening a quiet stream: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
}

// TestIdleStreamOutlivesWriteTimeout: over HTTP/2 (the CLI's protocol), a
// stream that has nothing to send for longer than the write timeout stays
// open: the timeout is for a write the client does not take. Before, the
// deadline of the last write stayed set, and HTTP/2 resets a stream whose
// deadline passes even with no write pending: `events -f` on a quiet
// cluster, or a deploy's progress waiting more than a minute, ended with
// "stream error: INTERNAL_ERROR".
func TestIdleStreamOutlivesWriteTimeout(t *testing.T) {
	st, srv := streamServer(t, Config{StreamWriteTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, "GET", srv.URL+"/v1/events?follow=true&since=1ns", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	br := bufio.NewReader(resp.Body)
	for i, action := range []string{"first", "late"} {
		if i > 0 {
			time.Sleep(time.Second) // idle after a write, five times the write timeout
		}
		ev := client.Event{Time: time.Now(), Type: "project", Project: "shop", Action: action}
		st.Txn(ctx, nil, store.Put(fmt.Sprintf("%s%020d", store.EventsPrefix, i), store.Encode(ev)))
		line, err := br.ReadString('\n')
		if err != nil || !strings.Contains(line, `"`+action+`"`) {
			t.Fatalf("event %q: %q, %v", action, line, err)
		}
	}
}
