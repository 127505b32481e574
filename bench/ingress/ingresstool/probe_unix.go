//go:build unix

package main

import "syscall"

// peekAlive peeks at the socket without blocking: EAGAIN means open and
// quiet; end of stream, an error or unasked-for bytes mean it is unusable.
func peekAlive(rc syscall.RawConn) bool {
	alive := true
	var buf [1]byte
	err := rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && alive
}
