// Package testports hands tests loopback ports to listen on. A port is
// found by listening on port 0 and closing; the kernel may hand the same
// number out again to the next such probe, so this package remembers
// what it gave in this process and never gives a port twice. (A port can
// still be taken by another process before the test binds it; that shows
// as a clear "address already in use".)
package testports

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Free returns a loopback TCP address, 127.0.0.1:port, free when asked.
func Free(t testing.TB) string {
	t.Helper()
	return find(t, false)
}

// FreeUDPAndTCP returns a loopback address whose port is free for both
// UDP and TCP (a DNS server's).
func FreeUDPAndTCP(t testing.TB) string {
	t.Helper()
	return find(t, true)
}

func find(t testing.TB, udpToo bool) string {
	t.Helper()
	for range 50 {
		var addr string
		if udpToo {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr = pc.LocalAddr().String()
			l, err := net.Listen("tcp", addr)
			pc.Close()
			if err != nil {
				continue
			}
			l.Close()
		} else {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr = l.Addr().String()
			l.Close()
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		mu.Lock()
		dup := given[port]
		given[port] = true
		mu.Unlock()
		if !dup {
			return addr
		}
	}
	t.Fatal("testports: no loopback port free in 50 tries")
	return ""
}
