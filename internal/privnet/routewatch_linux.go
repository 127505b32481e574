package privnet

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteWatch tells when the IPv4 routes of one network namespace change:
// a netlink socket subscribed to their multicast group. Waiting on it
// costs nothing until the kernel reports a change, where polling
// /proc/net/route every few milliseconds cost, for 20 containers starting
// at once, a fifth of a core.
type RouteWatch struct {
	fd      int
	buf     []byte
	recheck time.Duration // the longest wait for a change; see Wait
}

// WatchRoutes opens a RouteWatch in the network namespace of process pid,
// or in the caller's own when pid is 0. Subscribing needs no privilege; to
// enter another process's namespace needs CAP_SYS_ADMIN.
func WatchRoutes(pid int) (*RouteWatch, error) {
	if pid == 0 {
		return watchRoutesHere()
	}
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return nil, fmt.Errorf("namespace of process %d: %w", pid, err)
	}
	defer ns.Close()
	return WatchRoutesIn(ns)
}

// WatchRoutesIn opens a RouteWatch in the namespace ns. The socket is
// made on a thread that enters ns for that moment only; the socket stays
// in ns.
func WatchRoutesIn(ns netns.NsHandle) (*RouteWatch, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter namespace: %w", err)
	}
	w, werr := watchRoutesHere()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked, so it ends with this goroutine
		// instead of running others in the wrong namespace.
		if w != nil {
			w.Close()
		}
		return nil, fmt.Errorf("leave namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return w, werr
}

func watchRoutesHere() (*RouteWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV4_ROUTE}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink subscribe: %w", err)
	}
	return &RouteWatch{fd: fd, buf: make([]byte, 16<<10), recheck: 250 * time.Millisecond}, nil
}

// Wait returns nil once ready reports true. It asks first (the watch is
// open, so no change made after that is missed), then again after every
// change the kernel reports and at least every 250 ms; it returns ctx's
// error once ctx ends.
func (w *RouteWatch) Wait(ctx context.Context, ready func() bool) error {
	for {
		if ready() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		d := w.recheck
		if dl, ok := ctx.Deadline(); ok {
			d = max(min(d, time.Until(dl)), time.Millisecond)
		}
		tv := unix.NsecToTimeval(d.Nanoseconds())
		if err := unix.SetsockoptTimeval(w.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		// What the message says does not matter: ready looks again. An
		// overrun (ENOBUFS) means changes were lost: look again too.
		_, _, err := unix.Recvfrom(w.fd, w.buf, 0)
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.ENOBUFS) {
			return fmt.Errorf("netlink receive: %w", err)
		}
	}
}

// Close closes the socket.
func (w *RouteWatch) Close() error { return unix.Close(w.fd) }
