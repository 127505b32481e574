package netmesh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// openDevice makes the interface: a kernel WireGuard link (kept if a
// previous run left it), else wireguard-go on a TUN device, with its
// control socket where wgctrl looks (/var/run/wireguard/<name>.sock).
func openDevice(cfg Config) (device, error) {
	if !cfg.Userspace {
		d, err := kernelDevice(cfg.Name)
		if err == nil {
			return d, nil
		}
		cfg.Log.Info("no kernel WireGuard: the mesh runs in userspace", "reason", err)
	}
	return userspaceDevice(cfg)
}

type kernelLink struct{ idx int }

func (k kernelLink) kind() string { return "kernel" }
func (k kernelLink) index() int   { return k.idx }
func (k kernelLink) close() error {
	l, err := netlink.LinkByIndex(k.idx)
	if err != nil {
		return nil // gone
	}
	return netlink.LinkDel(l)
}

func kernelDevice(name string) (device, error) {
	if l, err := netlink.LinkByName(name); err == nil {
		if l.Type() == "wireguard" {
			return kernelLink{l.Attrs().Index}, nil
		}
		// A TUN of a run that crashed goes with its process; anything
		// else of that name is in the way.
		return nil, fmt.Errorf("%s exists and is a %s link", name, l.Type())
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = name, MTU
	if err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: la}); err != nil {
		return nil, err
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	return kernelLink{l.Attrs().Index}, nil
}

type userspace struct {
	dev  *wgdevice.Device
	uapi net.Listener
	idx  int
}

func (u *userspace) kind() string { return "userspace" }
func (u *userspace) index() int   { return u.idx }
func (u *userspace) close() error {
	err := u.uapi.Close()
	u.dev.Close() // closes the TUN: the interface goes
	return err
}

func userspaceDevice(cfg Config) (device, error) {
	t, err := tun.CreateTUN(cfg.Name, MTU)
	if err != nil {
		return nil, fmt.Errorf("TUN device: %w", err)
	}
	l := cfg.Log.With("iface", cfg.Name)
	logger := &wgdevice.Logger{
		Verbosef: func(string, ...any) {},
		Errorf:   func(f string, a ...any) { l.Warn("wireguard: " + fmt.Sprintf(f, a...)) },
	}
	dev := wgdevice.NewDevice(t, conn.NewDefaultBind(), logger)
	f, err := ipc.UAPIOpen(cfg.Name)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	uapi, err := ipc.UAPIListen(cfg.Name, f)
	if err != nil {
		f.Close()
		dev.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	go func() {
		for {
			c, err := uapi.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	link, err := netlink.LinkByName(cfg.Name)
	if err != nil {
		uapi.Close()
		dev.Close()
		return nil, err
	}
	if err := dev.Up(); err != nil {
		uapi.Close()
		dev.Close()
		return nil, err
	}
	return &userspace{dev: dev, uapi: uapi, idx: link.Attrs().Index}, nil
}

// linkUp brings the interface up, with IPv6 off: the firewall's rules are
// IPv4 rules.
func linkUp(idx int, name string) error {
	l, err := netlink.LinkByIndex(idx)
	if err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("turn IPv6 off: %w", err)
	}
	return netlink.LinkSetUp(l)
}

// syncRoutes makes self the interface's only address and routes exactly
// the prefixes over it, from self.
func syncRoutes(idx int, self netip.Addr, want []netip.Prefix) error {
	l, err := netlink.LinkByIndex(idx)
	if err != nil {
		return err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); !ok || ip.Unmap() != self {
			if err := netlink.AddrDel(l, &a); err != nil {
				return err
			}
		}
	}
	if self.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: self.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err := netlink.AddrReplace(l, a); err != nil {
			return fmt.Errorf("address %s: %w", self, err)
		}
	}
	keep := map[netip.Prefix]bool{}
	for _, p := range want {
		keep[p.Masked()] = true
		r := &netlink.Route{LinkIndex: idx, Dst: &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}, Scope: netlink.SCOPE_LINK}
		if self.IsValid() {
			r.Src = self.AsSlice()
		}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s: %w", p, err)
		}
	}
	routes, err := netlink.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, r := range routes {
		if r.Dst == nil || r.Protocol == syscall.RTPROT_KERNEL {
			continue
		}
		ip, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		if !keep[netip.PrefixFrom(ip.Unmap(), ones)] {
			if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("route %s: %w", r.Dst, err)
			}
		}
	}
	return nil
}
