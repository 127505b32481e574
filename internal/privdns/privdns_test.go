package privdns

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ruche-platform/ruche/internal/testports"
)

func TestRules(t *testing.T) {
	up := startUpstream(t)
	s := start(t, Config{Upstreams: []string{up.addr}, TTL: 7})
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		rcode     int
		aa        bool
		want      []string // A records
		forwarded bool
	}{
		{"service in zone", "db.shop.internal.", dns.TypeA, dns.RcodeSuccess, true, []string{"10.208.0.2", "10.208.0.3"}, false},
		{"replica in zone", "2.db.shop.internal.", dns.TypeA, dns.RcodeSuccess, true, []string{"10.208.0.3"}, false},
		{"mixed case", "DB.Shop.INTERNAL.", dns.TypeA, dns.RcodeSuccess, true, []string{"10.208.0.2", "10.208.0.3"}, false},
		{"rule 1: short name", "db.", dns.TypeA, dns.RcodeSuccess, true, []string{"10.208.0.2", "10.208.0.3"}, false},
		{"rule 1: name with a dot", "2.DB.", dns.TypeA, dns.RcodeSuccess, true, []string{"10.208.0.3"}, false},
		{"IPv4 only", "web.shop.internal.", dns.TypeA, dns.RcodeSuccess, true, []string{"10.208.0.4"}, false},
		{"no IPv4", "v6only.shop.internal.", dns.TypeA, dns.RcodeSuccess, true, nil, false},
		{"AAAA is NODATA", "db.shop.internal.", dns.TypeAAAA, dns.RcodeSuccess, true, nil, false},
		{"MX is NODATA", "db.shop.internal.", dns.TypeMX, dns.RcodeSuccess, true, nil, false},
		{"ANY is the A records", "db.shop.internal.", dns.TypeANY, dns.RcodeSuccess, true, []string{"10.208.0.2", "10.208.0.3"}, false},
		{"unknown in zone", "nope.shop.internal.", dns.TypeA, dns.RcodeNameError, true, nil, false},
		{"unknown below a known name", "x.db.shop.internal.", dns.TypeA, dns.RcodeNameError, true, nil, false},
		{"unknown AAAA in zone", "nope.shop.internal.", dns.TypeAAAA, dns.RcodeNameError, true, nil, false},
		{"zone apex", "shop.internal.", dns.TypeA, dns.RcodeSuccess, true, nil, false},
		{"internal itself", "internal.", dns.TypeA, dns.RcodeSuccess, true, nil, false},
		{"another project", "db.other.internal.", dns.TypeA, dns.RcodeNameError, true, nil, false},
		{"another zone", "other.internal.", dns.TypeA, dns.RcodeNameError, true, nil, false},
		{"rule 4: unknown short name", "nope.", dns.TypeA, dns.RcodeNameError, true, nil, false},
		{"rule 4: unknown short name, AAAA", "nope.", dns.TypeAAAA, dns.RcodeNameError, true, nil, false},
		{"public name", "example.com.", dns.TypeA, dns.RcodeSuccess, false, []string{"192.0.2.1"}, true},
		{"public name ending like ours", "db.shop.internal.example.com.", dns.TypeA, dns.RcodeSuccess, false, []string{"192.0.2.1"}, true},
		{"public AAAA", "example.com.", dns.TypeAAAA, dns.RcodeSuccess, false, nil, true},
		{"root", ".", dns.TypeNS, dns.RcodeSuccess, false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.queries()
			r := ask(t, s, "udp", tt.qname, tt.qtype, 0)
			if r.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if r.Authoritative != tt.aa {
				t.Errorf("aa = %v, want %v", r.Authoritative, tt.aa)
			}
			if got := addrs(r); !slices.Equal(got, tt.want) {
				t.Errorf("A = %v, want %v", got, tt.want)
			}
			if len(r.Answer) != len(tt.want) {
				t.Errorf("answer = %v, want only %d A records", r.Answer, len(tt.want))
			}
			for _, rr := range r.Answer {
				if h := rr.Header(); !tt.forwarded && (h.Name != tt.qname || h.Ttl != 7) {
					t.Errorf("record %v: want the name as asked, %q, and TTL 7", rr, tt.qname)
				}
			}
			if got := up.queries() - before; got != map[bool]int{false: 0, true: 1}[tt.forwarded] {
				t.Errorf("upstream got %d queries, forwarded = %v", got, tt.forwarded)
			}
		})
	}
}

func TestLookupPanic(t *testing.T) {
	s := start(t, Config{Lookup: func(name string) []netip.Addr {
		if name == "bug" {
			panic("lookup bug")
		}
		return names[name]
	}})
	if r := ask(t, s, "udp", "bug.shop.internal.", dns.TypeA, 0); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode = %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if r := ask(t, s, "udp", "db.shop.internal.", dns.TypeA, 0); len(r.Answer) != 2 {
		t.Errorf("after the panic: %v, want db's records", r)
	}
}

func TestDefaultTTL(t *testing.T) {
	s := start(t, Config{})
	r := ask(t, s, "udp", "db.shop.internal.", dns.TypeA, 0)
	for _, rr := range r.Answer {
		if rr.Header().Ttl != 5 {
			t.Errorf("TTL = %d, want 5", rr.Header().Ttl)
		}
	}
}

func TestShuffle(t *testing.T) {
	s := start(t, Config{})
	orders := map[string]bool{}
	for range 40 {
		r := ask(t, s, "udp", "db.shop.internal.", dns.TypeA, 0)
		var order []string
		for _, rr := range r.Answer {
			order = append(order, rr.(*dns.A).A.String())
		}
		orders[strings.Join(order, ",")] = true
	}
	if len(orders) != 2 {
		t.Errorf("orders over 40 answers = %v, want both orders of 2 addresses", orders)
	}
}

func TestTCP(t *testing.T) {
	up := startUpstream(t)
	s := start(t, Config{Upstreams: []string{up.addr}})
	r := ask(t, s, "tcp", "db.shop.internal.", dns.TypeA, 0)
	if got, want := addrs(r), []string{"10.208.0.2", "10.208.0.3"}; !slices.Equal(got, want) {
		t.Errorf("private over tcp = %v, want %v", got, want)
	}
	r = ask(t, s, "tcp", "example.com.", dns.TypeA, 0)
	if got, want := addrs(r), []string{"192.0.2.1"}; !slices.Equal(got, want) {
		t.Errorf("forwarded over tcp = %v, want %v", got, want)
	}
	if u, tc := up.udp.Load(), up.tcp.Load(); u != 0 || tc != 1 {
		t.Errorf("upstream got %d udp and %d tcp queries, want the tcp client's query over tcp", u, tc)
	}
}

func TestForwardRetriesTruncatedOverTCP(t *testing.T) {
	up := startUpstream(t)
	up.truncateUDP.Store(true)
	s := start(t, Config{Upstreams: []string{up.addr}})
	r := ask(t, s, "udp", "example.com.", dns.TypeA, 0)
	if got, want := addrs(r), []string{"192.0.2.1"}; !slices.Equal(got, want) || r.Truncated {
		t.Errorf("answer = %v (tc %v), want %v from the tcp retry", got, r.Truncated, want)
	}
	if u, tc := up.udp.Load(), up.tcp.Load(); u != 1 || tc != 1 {
		t.Errorf("upstream got %d udp and %d tcp queries, want 1 and 1", u, tc)
	}
}

func TestUpstreamsInOrder(t *testing.T) {
	first, second := startUpstream(t), startUpstream(t)
	s := start(t, Config{Upstreams: []string{testports.FreeUDPAndTCP(t), first.addr, second.addr}})
	r := ask(t, s, "udp", "example.com.", dns.TypeA, 0)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("answer = %v, want the first live upstream's", r)
	}
	if first.queries() != 1 || second.queries() != 0 {
		t.Errorf("queries = %d, %d, want 1, 0", first.queries(), second.queries())
	}
}

func TestServfail(t *testing.T) {
	for _, tt := range []struct {
		name      string
		upstreams []string
	}{
		{"upstream down", []string{testports.FreeUDPAndTCP(t)}},
		{"no upstream", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, Config{Upstreams: tt.upstreams})
			for _, network := range []string{"udp", "tcp"} {
				r := ask(t, s, network, "example.com.", dns.TypeA, 0)
				if r.Rcode != dns.RcodeServerFailure {
					t.Errorf("%s: rcode = %s, want SERVFAIL", network, dns.RcodeToString[r.Rcode])
				}
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	many := make([]netip.Addr, 100)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 208, 1, byte(i)})
	}
	s := start(t, Config{Lookup: func(string) []netip.Addr { return many }})
	tests := []struct {
		network string
		edns    uint16
		tc      bool
		maxLen  int
	}{
		{"udp", 0, true, dns.MinMsgSize},
		{"udp", 1232, true, 1232},
		{"udp", 4096, false, 4096},
		{"tcp", 0, false, dns.MaxMsgSize},
	}
	for _, tt := range tests {
		r := ask(t, s, tt.network, "pool.shop.internal.", dns.TypeA, tt.edns)
		if r.Truncated != tt.tc {
			t.Errorf("%s edns %d: tc = %v, want %v", tt.network, tt.edns, r.Truncated, tt.tc)
		}
		r.Compress = true // as it came: the client read it into a buffer of the size it asked for
		if n := r.Len(); n > tt.maxLen {
			t.Errorf("%s edns %d: %d bytes, want at most %d", tt.network, tt.edns, n, tt.maxLen)
		}
		if !tt.tc && len(r.Answer) != len(many) {
			t.Errorf("%s edns %d: %d records, want %d", tt.network, tt.edns, len(r.Answer), len(many))
		}
		if tt.tc && len(r.Answer) == 0 {
			t.Errorf("%s edns %d: no record, want as many as fit", tt.network, tt.edns)
		}
		if got := r.IsEdns0() != nil; got != (tt.edns > 0) {
			t.Errorf("%s edns %d: OPT in answer = %v", tt.network, tt.edns, got)
		}
	}
}

func TestNotOneStandardQuery(t *testing.T) {
	s := start(t, Config{})
	query := func(edit func(m *dns.Msg)) *dns.Msg {
		m := new(dns.Msg).SetQuestion("db.shop.internal.", dns.TypeA)
		edit(m)
		return m
	}
	tests := []struct {
		name  string
		msg   *dns.Msg
		rcode int
	}{
		{"notify", query(func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), dns.RcodeNotImplemented},
		{"update", query(func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), dns.RcodeNotImplemented},
		{"status", query(func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }), dns.RcodeNotImplemented},
		{"no question", query(func(m *dns.Msg) { m.Question = nil }), dns.RcodeFormatError},
		{"two questions", query(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), dns.RcodeFormatError},
		{"class chaos", query(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), dns.RcodeNotImplemented},
		{"class any", query(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassANY }), dns.RcodeNotImplemented},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				r := exchange(t, s, network, tt.msg)
				if r.Rcode != tt.rcode {
					t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				if len(r.Answer) != 0 {
					t.Errorf("answer = %v, want none", r.Answer)
				}
			})
		}
	}
}

// TestMalformed sends packets that are not DNS messages: the server answers
// FORMERR when it can read a header, nothing otherwise, and keeps serving.
func TestMalformed(t *testing.T) {
	s := start(t, Config{})
	good, err := new(dns.Msg).SetQuestion("db.shop.internal.", dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	const noAnswer, anyAnswer = -1, -2
	packets := []struct {
		name  string
		p     []byte
		rcode int
	}{
		{"empty", []byte{}, noAnswer},
		{"short", []byte{1, 2, 3}, noAnswer},
		{"cut question", good[:len(good)-3], dns.RcodeFormatError},
		{"bad pointer", append(append([]byte{}, good[:12]...), 0xc0, 0xff, 0, 1, 0, 1), dns.RcodeFormatError},
		{"pointer loop", append(append([]byte{}, good[:12]...), 0xc0, 12, 0, 1, 0, 1), dns.RcodeFormatError},
		{"trailing bytes", append(append([]byte{}, good...), make([]byte, 3000)...), anyAnswer},
		{"big", append(append([]byte{}, good[:12]...), make([]byte, 65000)...), anyAnswer},
	}
	for _, tt := range packets {
		c, err := net.Dial("udp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(tt.p); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		c.Close()
		switch {
		case err != nil && tt.rcode != noAnswer && tt.rcode != anyAnswer:
			t.Errorf("%s: no answer, want %s", tt.name, dns.RcodeToString[tt.rcode])
		case err == nil && tt.rcode == noAnswer:
			t.Errorf("%s: answer %x, want none", tt.name, buf[:n])
		case err == nil:
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil || !r.Response {
				t.Errorf("%s: answer %x is not a DNS response: %v", tt.name, buf[:n], err)
			} else if tt.rcode != anyAnswer && r.Rcode != tt.rcode {
				t.Errorf("%s: rcode = %s, want %s", tt.name, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
		}
	}
	for _, p := range [][]byte{{0xff, 0xff, 1, 2}, {0, 3, 1}} {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(p)
		c.Close()
	}
	for _, network := range []string{"udp", "tcp"} {
		if r := ask(t, s, network, "db.shop.internal.", dns.TypeA, 0); len(r.Answer) != 2 {
			t.Errorf("%s after malformed packets: %v", network, r)
		}
	}
}

// TestCloseWithQueriesInFlight closes the server while queries wait on an
// upstream that never answers: Close ends them instead of waiting out the
// upstream timeout, and frees the port.
func TestCloseWithQueriesInFlight(t *testing.T) {
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	tcpHole, err := net.Listen("tcp", hole.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcpHole.Close()
	received := make(chan struct{}, 10)
	go func() {
		buf := make([]byte, dns.MaxMsgSize)
		for {
			if _, _, err := hole.ReadFrom(buf); err != nil {
				return
			}
			received <- struct{}{}
		}
	}()
	go func() {
		for {
			c, err := tcpHole.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			if _, err := c.Read(make([]byte, 512)); err == nil {
				received <- struct{}{}
			}
		}
	}()
	s := start(t, Config{Upstreams: []string{hole.LocalAddr().String()}})

	var wg sync.WaitGroup
	for _, network := range []string{"udp", "tcp"} {
		wg.Go(func() {
			c := &dns.Client{Net: network, Timeout: 2 * upstreamTimeout}
			c.Exchange(new(dns.Msg).SetQuestion("example.com.", dns.TypeA), s.Addr().String())
		})
	}
	for range 2 {
		<-received
	}
	begin := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if took := time.Since(begin); took >= upstreamTimeout/2 {
		t.Errorf("Close took %v, want it to end forwarded queries at once", took)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	wg.Wait()

	pc, err := net.ListenPacket("udp", s.Addr().String())
	if err != nil {
		t.Fatalf("udp port still taken after Close: %v", err)
	}
	pc.Close()
	ln, err := net.Listen("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("tcp port still taken after Close: %v", err)
	}
	ln.Close()
}

func TestStartErrors(t *testing.T) {
	udpTaken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpTaken.Close()
	tcpTaken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpTaken.Close()
	self := testports.FreeUDPAndTCP(t)

	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"udp port taken", func(c *Config) { c.Addr = udpTaken.LocalAddr().String() }, "listen udp"},
		{"tcp port taken", func(c *Config) { c.Addr = tcpTaken.Addr().String() }, "listen tcp"},
		{"no port", func(c *Config) { c.Addr = "127.0.0.1" }, "listen udp"},
		{"not an address", func(c *Config) { c.Addr = "not an address:53" }, "listen udp"},
		{"no domain", func(c *Config) { c.Domain = "" }, "bad config"},
		{"bad domain", func(c *Config) { c.Domain = "a..b" }, "bad config"},
		{"no lookup", func(c *Config) { c.Lookup = nil }, "no Lookup"},
		{"upstream not ip:port", func(c *Config) { c.Upstreams = []string{"dns.example:53"} }, "bad config"},
		{"upstream without port", func(c *Config) { c.Upstreams = []string{"127.0.0.1"} }, "bad config"},
		{"upstream is itself", func(c *Config) { c.Addr, c.Upstreams = self, []string{self} }, "itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{
				Addr:   "127.0.0.1:0",
				Domain: "shop.internal",
				Lookup: func(string) []netip.Addr { return nil },
			}
			tt.edit(&cfg)
			s, err := Start(cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Start(%+v) succeeded, want an error", cfg)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to say %q", err, tt.want)
			}
			if tt.want == "bad config" && !errors.Is(err, ErrConfig) {
				t.Errorf("error = %v, want ErrConfig", err)
			}
		})
	}

	// The failed TCP bind left the UDP port of the same number free.
	pc, err := net.ListenPacket("udp", tcpTaken.Addr().String())
	if err != nil {
		t.Errorf("udp port kept after the tcp bind failed: %v", err)
	} else {
		pc.Close()
	}
}
