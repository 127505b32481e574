package privdns

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// serveDNS answers one query by the rules of the package comment. The
// server's accept function has already checked that it is a standard query
// with one question.
func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	defer func() {
		// A query must not take the daemon down, even through a bug in
		// Lookup: the client gets SERVFAIL and the log the panic.
		if v := recover(); v != nil {
			s.log.Error("query panicked", "name", req.Question[0].Name, "panic", v)
			s.write(w, req, new(dns.Msg).SetRcode(req, dns.RcodeServerFailure))
		}
	}()
	q := req.Question[0]
	if q.Qclass != dns.ClassINET {
		s.write(w, req, new(dns.Msg).SetRcode(req, dns.RcodeNotImplemented))
		return
	}
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	if m := s.answerPrivate(req, name); m != nil {
		s.write(w, req, m)
		return
	}
	s.write(w, req, s.forward(req, isTCP(w)))
}

// answerPrivate answers by rules 1 to 4: the name's records if it is ours,
// NXDOMAIN if it is private but nobody's, and nil if it is to be forwarded.
func (s *Server) answerPrivate(req *dns.Msg, name string) *dns.Msg {
	if name != "" {
		if addrs := s.cfg.Lookup(name); len(addrs) > 0 {
			return s.records(req, addrs)
		}
	}
	switch {
	case name == s.zone || name == "internal":
		return s.records(req, nil) // they exist: they have names below them
	case strings.HasSuffix(name, "."+s.zone):
		if addrs := s.cfg.Lookup(strings.TrimSuffix(name, "."+s.zone)); len(addrs) > 0 {
			return s.records(req, addrs)
		}
	case name != "" && !strings.Contains(name, "."):
		// A single label nobody here has: answered, not forwarded.
	case !strings.HasSuffix(name, ".internal"):
		return nil
	}
	m := s.authoritative(req)
	m.Rcode = dns.RcodeNameError
	return m
}

// records answers a name that exists: its A records for A and ANY queries
// (shuffled, IPv4 only), NODATA for every other type.
func (s *Server) records(req *dns.Msg, addrs []netip.Addr) *dns.Msg {
	m := s.authoritative(req)
	q := req.Question[0]
	if q.Qtype != dns.TypeA && q.Qtype != dns.TypeANY {
		return m
	}
	for _, a := range addrs {
		if a = a.Unmap(); !a.Is4() {
			continue
		}
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: s.cfg.TTL},
			A:   net.IP(a.AsSlice()),
		})
	}
	rand.Shuffle(len(m.Answer), func(i, j int) { m.Answer[i], m.Answer[j] = m.Answer[j], m.Answer[i] })
	return m
}

// authoritative is an empty authoritative reply to req.
func (s *Server) authoritative(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg).SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	return m
}

// write sends m, cut to the client's buffer size over UDP (512 bytes
// without EDNS0) with TC set when records had to be left out. A client that
// sent EDNS0 gets an OPT record back, as RFC 6891 asks.
func (s *Server) write(w dns.ResponseWriter, req, m *dns.Msg) {
	m.Id = req.Id
	size := dns.MaxMsgSize
	if opt := req.IsEdns0(); opt != nil {
		if m.IsEdns0() == nil {
			m.SetEdns0(ednsSize, false)
		}
		if !isTCP(w) {
			size = int(opt.UDPSize())
		}
	} else if !isTCP(w) {
		size = dns.MinMsgSize
	}
	m.Truncate(size)
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("answer not sent", "client", w.RemoteAddr(), "err", err)
	}
}

// ednsSize is the UDP payload size the server advertises: the size DNS
// Flag Day 2020 chose to avoid IP fragmentation.
const ednsSize = 1232

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}
