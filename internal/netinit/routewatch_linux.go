package netinit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteWatch tells when the IPv4 routes of one network namespace change:
// a netlink socket subscribed to their multicast group. Waiting on it
// costs nothing until the kernel reports a change, where polling
// /proc/net/route every few milliseconds cost, for 20 containers starting
// at once, a fifth of a core.
type RouteWatch struct {
	s       *nl.NetlinkSocket
	recheck time.Duration // the longest wait for a change; see Wait
}

// WatchRoutes opens a RouteWatch in the network namespace of process pid,
// or in the caller's own when pid is 0. Subscribing needs no privilege; to
// enter another process's namespace needs CAP_SYS_ADMIN.
func WatchRoutes(pid int) (*RouteWatch, error) {
	if pid == 0 {
		return newRouteWatch(nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_ROUTE))
	}
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return nil, fmt.Errorf("namespace of process %d: %w", pid, err)
	}
	defer ns.Close()
	return WatchRoutesIn(ns)
}

// WatchRoutesIn opens a RouteWatch in the namespace ns (the socket is made
// there; the calling thread goes back to its own namespace).
func WatchRoutesIn(ns netns.NsHandle) (*RouteWatch, error) {
	return newRouteWatch(nl.SubscribeAt(ns, netns.None(), unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_ROUTE))
}

func newRouteWatch(s *nl.NetlinkSocket, err error) (*RouteWatch, error) {
	if err != nil {
		return nil, fmt.Errorf("netlink route subscription: %w", err)
	}
	return &RouteWatch{s: s, recheck: 250 * time.Millisecond}, nil
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
		w.s.SetReceiveTimeout(&tv)
		// What the messages say does not matter: ready looks again. An
		// overrun (ENOBUFS) means changes were lost: look again too.
		_, _, err := w.s.Receive()
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.ENOBUFS) {
			return fmt.Errorf("netlink receive: %w", err)
		}
	}
}

// Close closes the socket.
func (w *RouteWatch) Close() { w.s.Close() }
