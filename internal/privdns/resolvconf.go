package privdns

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// ErrNoNameserver is returned by HostUpstreams for a resolv.conf without a
// usable nameserver line.
var ErrNoNameserver = errors.New("privdns: no nameserver")

// HostUpstreams returns the nameservers of a resolv.conf as ip:port (port
// 53, IPv6 in brackets), in the file's order, for Config.Upstreams. Like
// the C library, it skips a nameserver line whose address does not parse.
func HostUpstreams(resolvConfPath string) ([]string, error) {
	f, err := os.Open(resolvConfPath)
	if err != nil {
		return nil, fmt.Errorf("privdns: read resolv.conf: %w", err)
	}
	defer f.Close()
	var ups []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue // comments (# or ;) and other options
		}
		addr, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		ups = append(ups, netip.AddrPortFrom(addr.Unmap(), 53).String())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("privdns: read %s: %w", resolvConfPath, err)
	}
	if len(ups) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoNameserver, resolvConfPath)
	}
	return ups, nil
}
