//go:build !unix

package main

import "syscall"

// peekAlive cannot peek here: the connection is assumed open, and a
// request that finds it closed is retried as net/http's Transport would.
func peekAlive(syscall.RawConn) bool { return true }
