package privdns

import (
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// names is the project "shop" as Lookup sees it.
var names = map[string][]netip.Addr{
	"db":     {netip.MustParseAddr("10.208.0.2"), netip.MustParseAddr("10.208.0.3")},
	"2.db":   {netip.MustParseAddr("10.208.0.3")},
	"web":    {netip.MustParseAddr("10.208.0.4"), netip.MustParseAddr("fd00::4")},
	"v6only": {netip.MustParseAddr("fd00::5")},
}

func lookupNames(name string) []netip.Addr { return names[name] }

// start runs a server for "shop.internal" on a loopback port; cfg's zero
// fields get the test's defaults.
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Domain == "" {
		cfg.Domain = "shop.internal"
	}
	if cfg.Lookup == nil {
		cfg.Lookup = lookupNames
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ask sends one query to s over network ("udp" or "tcp"); edns > 0 adds
// an OPT record with that buffer size.
func ask(t *testing.T, s *Server, network, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	return exchange(t, s, network, m)
}

func exchange(t *testing.T, s *Server, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * upstreamTimeout}
	r, _, err := c.Exchange(m, s.Addr().String())
	if err != nil {
		t.Fatalf("%s %v %s: %v", network, m.Question, dns.OpcodeToString[m.Opcode], err)
	}
	if r.Id != m.Id {
		t.Fatalf("answer id = %d, want the query's %d", r.Id, m.Id)
	}
	return r
}

// addrs are the A records of m, sorted.
func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out
}

// upstream is a fake resolver on loopback: it answers every A query with
// 192.0.2.1 and counts the queries it gets over each network.
type upstream struct {
	addr     string
	udp, tcp atomic.Int32
	// truncateUDP makes it answer over UDP with TC set and no records.
	truncateUDP atomic.Bool
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: pc.LocalAddr().String()}
	for _, srv := range []*dns.Server{{PacketConn: pc}, {Listener: ln}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		srv.Handler = u
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

func (u *upstream) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg).SetReply(req)
	m.RecursionAvailable = true
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		u.tcp.Add(1)
	} else {
		u.udp.Add(1)
		if u.truncateUDP.Load() {
			m.Truncated = true
			w.WriteMsg(m)
			return
		}
	}
	if q := req.Question[0]; q.Qtype == dns.TypeA {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.ParseIP("192.0.2.1"),
		})
	}
	w.WriteMsg(m)
}

func (u *upstream) queries() int { return int(u.udp.Load() + u.tcp.Load()) }
