package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// wsClientPy drives one WebSocket connection of a real client, Debian's
// python3-websockets, from lines on stdin; it answers each with one JSON
// line on stdout:
//
//	text <s>        send s as text, read the echo
//	binary <n>      send n random bytes as binary, read the echo
//	wait_close <s>  wait up to s seconds for the server to close
//	close           close from the client side
const wsClientPy = `
import asyncio, json, os, ssl, sys
import websockets

def out(**o):
    print(json.dumps(o), flush=True)

async def main():
    url, addr, cafile = sys.argv[1], sys.argv[2], sys.argv[3]
    host, port = addr.rsplit(":", 1)
    kw = dict(host=host, port=int(port), max_size=8 << 20, open_timeout=30,
              extra_headers={"X-Forwarded-For": "203.0.113.9"})
    if url.startswith("wss:"):
        kw["ssl"] = ssl.create_default_context(cafile=cafile)
        kw["server_hostname"] = url.split("/")[2].split(":")[0]
    try:
        ws = await websockets.connect(url, **kw)
    except Exception as e:
        out(error="connect: %r" % e)
        return
    out(open=True, headers=dict(ws.response_headers.raw_items()))
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd in ("text", "binary"):
                msg = arg if cmd == "text" else os.urandom(int(arg))
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), 60)
                out(ok=got == msg, type="text" if isinstance(got, str) else "binary", size=len(got))
            elif cmd == "wait_close":
                await asyncio.wait_for(ws.wait_closed(), float(arg))
                out(closed=True, code=ws.close_code, reason=ws.close_reason)
            elif cmd == "close":
                await ws.close()
                out(closed=True, code=ws.close_code, reason=ws.close_reason)
            else:
                out(error="unknown command " + cmd)
        except websockets.ConnectionClosed as e:
            out(error="closed: %s" % e, code=ws.close_code)
        except Exception as e:
            out(error=repr(e))

asyncio.run(main())
`

// wsPython is the interpreter with python3-websockets: Debian's, not a
// python3 earlier on PATH (pyenv) that lacks the module.
const wsPython = "/usr/bin/python3"

func needWSClient(t *testing.T) {
	t.Helper()
	if err := exec.Command(wsPython, "-c", "import websockets").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s cannot import websockets (make test installs python3-websockets): %v", wsPython, err)
		}
		t.Skipf("no WebSocket client: %s cannot import websockets (apt-get install python3-websockets): %v", wsPython, err)
	}
}

// wsConn is one connection of the Python client, through the ingress.
type wsConn struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	headers map[string]string
}

// wsReply is one answer line of the client.
type wsReply struct {
	Open    bool              `json:"open"`
	Headers map[string]string `json:"headers"`
	OK      bool              `json:"ok"`
	Type    string            `json:"type"`
	Size    int               `json:"size"`
	Closed  bool              `json:"closed"`
	Code    int               `json:"code"`
	Reason  string            `json:"reason"`
	Error   string            `json:"error"`
}

// dialWS opens url (its host is the route's) through the ingress at addr;
// ca is the CA file a wss:// URL is verified with.
func dialWS(t *testing.T, url, addr, ca string) *wsConn {
	t.Helper()
	script := filepath.Join(t.TempDir(), "wsclient.py")
	if err := os.WriteFile(script, []byte(wsClientPy), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &wsConn{t: t, name: url, lines: make(chan string, 16)}
	c.cmd = exec.Command(wsPython, script, url, addr, ca)
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	c.cmd.Stderr = &stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		c.stdin.Close() // the client returns at EOF
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("WebSocket client %s stderr:\n%s", url, tail(stderr.String(), 20))
		}
	})
	r := c.reply("open")
	if !r.Open {
		t.Fatalf("WebSocket %s: %s", url, r.Error)
	}
	c.headers = r.Headers
	return c
}

// reply reads the client's next answer.
func (c *wsConn) reply(what string) wsReply {
	c.t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("WebSocket %s: the client ended before answering %s", c.name, what)
		}
		var r wsReply
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			c.t.Fatalf("WebSocket %s: %s: %v in %q", c.name, what, err, line)
		}
		return r
	case <-time.After(90 * time.Second):
		c.t.Fatalf("WebSocket %s: no answer to %s within 90s", c.name, what)
		return wsReply{}
	}
}

func (c *wsConn) do(command string) wsReply {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, command+"\n"); err != nil {
		c.t.Fatalf("WebSocket %s: %s: %v", c.name, command, err)
	}
	return c.reply(command)
}

// echo sends a text message, a binary one and a 1 MiB binary one, and
// checks each comes back whole and of the same type.
func (c *wsConn) echo(label string) {
	c.t.Helper()
	tests := []struct {
		command, wantType string
		wantSize          int
	}{
		{"text hello " + label, "text", len("hello " + label)},
		{"binary 1000", "binary", 1000},
		{"binary 1048576", "binary", 1 << 20},
	}
	for _, tt := range tests {
		r := c.do(tt.command)
		if !r.OK || r.Type != tt.wantType || r.Size != tt.wantSize {
			c.t.Fatalf("WebSocket %s, %s: %s: got ok=%v %s of %d bytes (%s), want the same %s of %d bytes back",
				c.name, label, firstWord(tt.command), r.OK, r.Type, r.Size, r.Error, tt.wantType, tt.wantSize)
		}
	}
}

func firstWord(s string) string { return strings.Fields(s)[0] }

// wsDrainTimeout is ruche up's --drain-timeout here: how long an open
// WebSocket holds its old replica during a rollout.
const wsDrainTimeout = 8 * time.Second

// TestIngressWebSocket: a real WebSocket client through the ingress,
// ws:// on the HTTP listener (the Traefik-labelled service) and wss:// on
// the HTTPS one (tls: internal): text, binary and 1 MiB messages come back
// whole, the backend sees the client's address in X-Forwarded-For (a
// spoofed one replaced), a socket stays open across a scale up, and during
// a rolling update the socket on an old replica keeps working while it
// drains, then ends with a clean close (1001 from the application on its
// SIGTERM) once the drain timeout has passed, and the rollout completes.
func TestIngressWebSocket(t *testing.T) {
	needWSClient(t)
	p := startPlatform(t, "--drain-timeout", wsDrainTimeout.String())
	proj := uniq("e2e-ws-")
	cleanupProject(t, p, proj)
	host := proj + ".ruche.test"
	p.must("deploy", "-f", routedFile(t, "1", host, "internal"), "-p", proj)
	hport, sport := portOf(t, p.httpAddr), portOf(t, p.httpsAddr)

	ws := dialWS(t, "ws://legacy."+host+":"+hport+"/ws", p.httpAddr, "")
	if got := ws.headers["X-Hello-Forwarded-For"]; got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For at the backend: got %q, want 127.0.0.1 (the client's 203.0.113.9 is not trusted)", got)
	}
	ws.echo("ws://")
	if r := ws.do("close"); !r.Closed || r.Code != 1000 {
		t.Fatalf("ws:// close from the client: got closed=%v code %d (%s), want 1000", r.Closed, r.Code, r.Error)
	}

	ca := filepath.Join(p.dataDir, "pki", "ca.crt")
	eventually(t, "certificate served", 30*time.Second, func() bool {
		_, err := curl(t, "--cacert", ca, "--resolve", host+":"+sport+":127.0.0.1", "https://"+host+":"+sport+"/")
		return err == nil
	})
	wss := dialWS(t, "wss://"+host+":"+sport+"/ws", p.httpsAddr, ca)
	wss.echo("wss://")

	// A replica added: the open socket is not disturbed.
	p.must("scale", proj+"/web=3")
	wss.echo("after scale 2->3")

	// Rolling update: the socket's replica leaves every proxy, drains
	// while the socket stays open, is stopped at the drain timeout, and
	// its SIGTERM closes the socket with 1001.
	old := wss.headers["X-Hello-Replica"]
	type result struct {
		out  string
		code int
	}
	deployed := make(chan result, 1)
	go func() {
		out, errOut, code := p.ruche("deploy", "-f", routedFile(t, "2", host, "internal"), "-p", proj)
		deployed <- result{out + errOut, code}
	}()
	eventually(t, "old "+old+" stopping", 120*time.Second, func() bool {
		for _, r := range service(t, p.project(proj), "web").Replicas {
			if r.Name() == old && r.Status.State == client.StateStopping {
				return true
			}
		}
		return false
	})
	wss.echo("while draining")
	r := wss.do(fmt.Sprintf("wait_close %d", int(wsDrainTimeout.Seconds())+60))
	if !r.Closed || r.Code != 1001 {
		t.Fatalf("socket on the drained replica: got closed=%v code %d %q (%s), want a close 1001", r.Closed, r.Code, r.Reason, r.Error)
	}
	t.Logf("socket on the drained replica %s: close %d %q", old, r.Code, r.Reason)
	select {
	case res := <-deployed:
		if res.code != 0 {
			t.Fatalf("rolling update with an open WebSocket: exit %d\n%s", res.code, res.out)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("rolling update with an open WebSocket: not converged within 5 minutes")
	}
	wss2 := dialWS(t, "wss://"+host+":"+sport+"/ws", p.httpsAddr, ca)
	if got := wss2.headers["X-Hello-Version"]; got != "2" {
		t.Errorf("a new socket after the update reached version %q, want 2", got)
	}
	wss2.echo("after the update")
}
