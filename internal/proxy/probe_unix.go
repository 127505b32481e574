//go:build unix

package proxy

import "syscall"

// probe reads without blocking: EAGAIN means the connection is open and
// quiet.
func (c *conn) probe(fd uintptr) bool {
	_, err := syscall.Read(int(fd), c.probeBuf[:])
	c.probeOK = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true
}
