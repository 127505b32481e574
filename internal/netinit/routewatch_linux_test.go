package netinit

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// newNamespace makes an unnamed network namespace of the test's own,
// gone when its handle is closed.
func newNamespace(t *testing.T) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("a network namespace needs root, and CI=true makes that a failure")
		}
		t.Skip("a network namespace needs root")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New()
	if serr := netns.Set(orig); serr != nil {
		t.Fatalf("back to the test's namespace: %v", serr) // the thread stays locked and ends
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// TestRouteWatch: Wait returns when a default route appears, woken by the
// kernel's message (the periodic look again is set to an hour), and not
// before.
func TestRouteWatch(t *testing.T) {
	ns := newNamespace(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	asked := 0
	ready := func() bool {
		asked++
		routes, err := h.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Error(err)
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				return true
			}
		}
		return false
	}
	w, err := WatchRoutesIn(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.recheck = time.Hour

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err = w.Wait(ctx, ready)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || asked == 0 {
		t.Fatalf("no default route yet: Wait = %v after %d looks, want the deadline after at least one", err, asked)
	}

	// The routes, from another goroutine once Wait waits: a veth pair,
	// an address (the kernel adds its local routes: messages that do
	// not make ready true), then the default route.
	go func() {
		time.Sleep(50 * time.Millisecond)
		link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "rw0"}, PeerName: "rw1"}
		if err := h.LinkAdd(link); err != nil {
			t.Error(err)
			return
		}
		addr, _ := netlink.ParseAddr("192.0.2.1/24")
		if err := h.AddrAdd(link, addr); err != nil {
			t.Error(err)
		}
		if err := h.LinkSetUp(link); err != nil {
			t.Error(err)
		}
		if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.ParseIP("192.0.2.254")}); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Wait(ctx, ready); err != nil {
		t.Fatalf("Wait after the default route was added: %v", err)
	}
}
