package testports

import (
	"net"
	"testing"
)

func TestFreeNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 500 {
		a := Free(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
	a := FreeUDPAndTCP(t)
	if seen[a] {
		t.Fatalf("%s handed out twice", a)
	}
	pc, err := net.ListenPacket("udp", a)
	if err != nil {
		t.Fatalf("UDP on %s: %v", a, err)
	}
	defer pc.Close()
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("TCP on %s: %v", a, err)
	}
	l.Close()
}
