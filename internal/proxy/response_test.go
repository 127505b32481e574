package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestReadHead(t *testing.T) {
	tests := []struct {
		name       string
		head       string
		wantErr    error
		status     int
		length     int64
		chunked    bool
		untilClose bool
		close      bool
	}{
		{name: "length", head: "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", status: 200, length: 12},
		{name: "no reason", head: "HTTP/1.1 204\r\n\r\n", status: 204, length: -1, untilClose: true, close: true},
		{name: "bare LF", head: "HTTP/1.1 200 OK\nContent-Length: 1\n\n", status: 200, length: 1},
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", status: 200, length: -1, chunked: true},
		{name: "te without chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", status: 200, length: -1, untilClose: true, close: true},
		{name: "te wins over length", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", status: 200, length: -1, chunked: true, close: true},
		{name: "connection close", head: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", status: 200, length: 0, close: true},
		{name: "http/1.0", head: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", status: 200, length: 0, close: true},
		{name: "same length twice", head: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", status: 200, length: 3},
		{name: "two lengths", head: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", wantErr: errProtocol},
		{name: "signed length", head: "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", wantErr: errProtocol},
		{name: "te in http/1.0", head: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errProtocol},
		{name: "bad version", head: "HTTP/2.0 200 OK\r\n\r\n", wantErr: errProtocol},
		{name: "short status", head: "HTTP/1.1 20\r\n\r\n", wantErr: errProtocol},
		{name: "status 099", head: "HTTP/1.1 099 X\r\n\r\n", wantErr: errProtocol},
		{name: "no colon", head: "HTTP/1.1 200 OK\r\nBroken\r\n\r\n", wantErr: errProtocol},
		{name: "bad name", head: "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", wantErr: errProtocol},
		{name: "fold", head: "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", wantErr: errProtocol},
		{name: "tab and obs-text in value", head: "HTTP/1.1 200 OK\r\nA: b\tc \xe9\r\nContent-Length: 0\r\n\r\n", status: 200},
		{name: "nul in value", head: "HTTP/1.1 200 OK\r\nA: b\x00c\r\nContent-Length: 0\r\n\r\n", wantErr: errProtocol},
		{name: "bare cr in value", head: "HTTP/1.1 200 OK\r\nA: b\rc\r\nContent-Length: 0\r\n\r\n", wantErr: errProtocol},
		{name: "control in value", head: "HTTP/1.1 200 OK\r\nA: b\x1bc\r\nContent-Length: 0\r\n\r\n", wantErr: errProtocol},
		{name: "del in value", head: "HTTP/1.1 200 OK\r\nA: b\x7f\r\nContent-Length: 0\r\n\r\n", wantErr: errProtocol},
		{name: "empty", head: "", wantErr: errResetBefore},
		{name: "cut status", head: "HTTP/1.1 2", wantErr: errProtocol},
		{name: "cut headers", head: "HTTP/1.1 200 OK\r\nA: b\r\n", wantErr: errProtocol},
		{name: "huge head", head: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("f", 1000)+"\r\n", 200) + "\r\n", wantErr: errProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h respHead
			err := readHead(bufio.NewReaderSize(strings.NewReader(tt.head), readBufSize), &h)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.status != tt.status || h.contentLength != tt.length || h.chunked != tt.chunked || h.untilClose != tt.untilClose || h.close != tt.close {
				t.Errorf("got status %d length %d chunked %v untilClose %v close %v", h.status, h.contentLength, h.chunked, h.untilClose, h.close)
			}
		})
	}
}

func TestPublish(t *testing.T) {
	head := "HTTP/1.1 200 OK\r\ncontent-TYPE: text/html\r\nX-WEIRD-name:  spaced \t\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n" +
		"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nTrailer: X-Sum\r\nContent-Length: 0\r\n\r\n"
	var h respHead
	if err := readHead(bufio.NewReader(strings.NewReader(head)), &h); err != nil {
		t.Fatal(err)
	}
	got := http.Header{}
	h.publish(got)
	want := http.Header{
		"Content-Type":   {"text/html"},
		"X-Weird-Name":   {"spaced"},
		"Set-Cookie":     {"a=1", "b=2"},
		"Trailer":        {"X-Sum"},
		"Content-Length": {"0"},
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if strings.Join(got[k], "|") != strings.Join(v, "|") {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
}

func TestChunkedBody(t *testing.T) {
	tests := []struct {
		name, body string
		want       string
		wantErr    bool
	}{
		{"simple", "3\r\nabc\r\n0\r\n\r\n", "abc", false},
		{"upper hex, ext", "A;x=y\r\n0123456789\r\n0\r\n\r\n", "0123456789", false},
		{"trailers", "1\r\na\r\n0\r\nX-T: v\r\n\r\n", "a", false},
		{"cut in data", "5\r\nab", "ab", true},
		{"cut before last chunk", "1\r\na\r\n", "a", true},
		{"bad size", "zz\r\nab\r\n0\r\n\r\n", "", true},
		{"missing crlf", "1\r\nab0\r\n\r\n", "a", true},
		{"huge size", "fffffffffffffffff\r\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newRecorder()
			var h respHead
			bc := bodyCopier{w: w, br: bufio.NewReader(strings.NewReader(tt.body))}
			err := bc.copyChunked(&h)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if w.Body.String() != tt.want {
				t.Errorf("body: got %q, want %q", w.Body.String(), tt.want)
			}
			if tt.name == "trailers" && w.Header().Get(http.TrailerPrefix+"X-T") != "v" {
				t.Errorf("trailer not forwarded: %v", w.Header())
			}
		})
	}
}

func TestWriteChunkedRequestBody(t *testing.T) {
	var out strings.Builder
	bw := bufio.NewWriter(&out)
	if err := writeBody(bw, io.MultiReader(strings.NewReader("hello "), strings.NewReader("world")), -1); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	out.Reset()
	err := writeBody(bw, strings.NewReader("abc"), 5)
	if !clientSide(err) {
		t.Errorf("short body: got %v, want a client-side error", err)
	}
}
