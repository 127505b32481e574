package privnet

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/ruche-platform/ruche/client"
)

// Published ports. Docker cannot publish the ports of a container without
// a network, so ruche does what Docker does for its own: a DNAT rule per
// port for traffic to the node's addresses from elsewhere (Host.AddForward),
// and a listener of its own on the port, which holds it (a port already
// taken is an error, not a silent conflict) and carries connections made on
// the node itself to loopback, which DNAT does not see. UDP is forwarded
// by the rule only: the node's own UDP to 127.0.0.1 is not.

// Forward is one published port of a container, for the firewall.
type Forward struct {
	Proto    string     // "tcp" or "udp"
	HostIP   netip.Addr // invalid: every address of the node
	HostPort uint16
	Dest     netip.AddrPort // the container's address and port
	Bridge   string
}

// portSet is what a container publishes: its bindings and the listeners
// holding them.
type portSet struct {
	bindings []client.PortBinding
	closers  []io.Closer
}

func (p *portSet) close() {
	for _, c := range p.closers {
		c.Close()
	}
}

// OpenPorts publishes the ports of a container at dest on bridge, unless
// they are open already; it returns the bindings (ephemeral ports chosen).
// On error nothing stays open.
func (m *Manager) OpenPorts(containerID string, dest netip.Addr, bridge string, specs []client.PortSpec) ([]client.PortBinding, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ps, ok := m.ports[containerID]; ok {
		return ps.bindings, nil
	}
	if len(specs) == 0 {
		return nil, nil
	}
	ps := &portSet{}
	fail := func(err error) ([]client.PortBinding, error) {
		ps.close()
		if rerr := m.cfg.Host.RemoveForwards(containerID); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	for _, spec := range specs {
		proto := spec.Protocol
		if proto == "" {
			proto = "tcp"
		}
		var hostIP netip.Addr
		if spec.HostIP != "" {
			a, err := netip.ParseAddr(spec.HostIP)
			if err != nil || !a.Is4() {
				return fail(fmt.Errorf("port %d: host address %q: only IPv4 addresses are published on ruche's networks", spec.Target, spec.HostIP))
			}
			if !a.IsUnspecified() {
				hostIP = a
			}
		}
		to := netip.AddrPortFrom(dest, spec.Target)
		c, port, err := m.listen(proto, hostIP, spec.Published, to)
		if err != nil {
			return fail(fmt.Errorf("port %d/%s: %w", spec.Target, proto, err))
		}
		ps.closers = append(ps.closers, c)
		if !hostIP.IsLoopback() {
			f := Forward{Proto: proto, HostIP: hostIP, HostPort: port, Dest: to, Bridge: bridge}
			if err := m.cfg.Host.AddForward(containerID, f); err != nil {
				return fail(fmt.Errorf("port %d/%s: %w", spec.Target, proto, err))
			}
		}
		b := client.PortBinding{Target: spec.Target, Published: port, Protocol: proto, HostIP: "0.0.0.0"}
		if hostIP.IsValid() {
			b.HostIP = hostIP.String()
		}
		ps.bindings = append(ps.bindings, b)
	}
	m.ports[containerID] = ps
	return ps.bindings, nil
}

// listen takes the port on the node: a TCP listener that carries its
// connections to to, or a UDP socket that only holds the port.
func (m *Manager) listen(proto string, hostIP netip.Addr, port uint16, to netip.AddrPort) (io.Closer, uint16, error) {
	host := ""
	if hostIP.IsValid() {
		host = hostIP.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	switch proto {
	case "tcp":
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			return nil, 0, err
		}
		go relay(ln, to.String(), m.log)
		return ln, uint16(ln.Addr().(*net.TCPAddr).Port), nil
	case "udp":
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return nil, 0, err
		}
		return pc, uint16(pc.LocalAddr().(*net.UDPAddr).Port), nil
	}
	return nil, 0, fmt.Errorf("protocol %q: want tcp or udp", proto)
}

// relay carries each connection accepted on ln to addr, until ln closes.
func relay(ln net.Listener, addr string, log *slog.Logger) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp4", addr)
			if err != nil {
				log.Debug("published port: no answer from the container", "to", addr, "err", err)
				return
			}
			defer up.Close()
			var wg sync.WaitGroup
			wg.Go(func() { io.Copy(up, c); closeWrite(up) })
			io.Copy(c, up)
			closeWrite(c)
			wg.Wait()
		}()
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// Ports returns the bindings of a container's published ports.
func (m *Manager) Ports(containerID string) []client.PortBinding {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ps, ok := m.ports[containerID]; ok {
		return ps.bindings
	}
	return nil
}

// ClosePorts unpublishes the ports of a container that stopped or went
// away.
func (m *Manager) ClosePorts(containerID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps, ok := m.ports[containerID]
	if !ok {
		return nil
	}
	delete(m.ports, containerID)
	ps.close()
	return m.cfg.Host.RemoveForwards(containerID)
}
