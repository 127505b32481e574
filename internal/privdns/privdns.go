// Package privdns is the DNS server of one project network: ruche runs one
// on the gateway address of each project bridge, and every container of the
// project has it as its only nameserver (search <project>.internal,
// options ndots:1). It answers the project's private names from a lookup
// function and forwards every other name to the host's resolvers. It knows
// nothing about Docker, bridges or agents; the caller gives it an address, a
// zone and a lookup.
//
// A query is answered by these rules, in order (the name lowercased, its
// trailing dot removed):
//
//  1. If Lookup returns addresses for the name as asked, the name is ours.
//     This covers names that the resolver sent as absolute because they have
//     a dot, such as "2.db", before trying the search suffix.
//  2. Otherwise, a name in the project's zone (ending in "."+Domain) is ours
//     with the suffix stripped, even when Lookup knows nothing of it: it then
//     gets an authoritative NXDOMAIN and is never forwarded, so private names
//     never leak to the host's resolvers.
//  3. Otherwise, a name under "internal" gets an authoritative NXDOMAIN and is
//     never forwarded either: it is another project's zone, or nobody's.
//  4. Otherwise, a single-label name ("db" in another project, or a typo)
//     gets an authoritative NXDOMAIN too: the resolver in a container asks
//     for it as an absolute name after the search suffix failed, and
//     forwarding it would tell the host's resolvers the names a project
//     looks for, for an answer that public DNS does not give (there are no
//     single-label public names but the TLDs, which have no addresses).
//  5. Every other name is forwarded to the upstreams in order, over UDP with
//     a 2 s timeout each (over TCP when the client asked over TCP, and again
//     over TCP when an upstream's UDP answer is truncated). The query goes
//     out as the client sent it but under a fresh message ID, since the ID
//     is what makes an answer hard to forge and the client's may be
//     guessable; the first answer that is not SERVFAIL or REFUSED goes back
//     under the client's ID. When every upstream fails, or there is none,
//     the client gets SERVFAIL.
//
// A name that is ours answers type A with one record per IPv4 address, in
// an order shuffled per answer (as Docker's resolver does) so that clients
// which take the first address spread over the replicas; ANY gets the same A
// records. AAAA and every other type get NOERROR with no answer (NODATA):
// an NXDOMAIN would wrongly deny the A records, and no answer at all would
// make clients wait for a timeout. The zone itself and its parent
// "internal" exist (they have names below them), so they get NODATA rather
// than NXDOMAIN: resolvers that trust an NXDOMAIN to cover the whole subtree
// (RFC 8020) would otherwise deny every private name.
//
// Messages that are not one standard query never reach the rules: they get
// FORMERR when malformed or without exactly one question (RFC 1035, RFC
// 9619), NOTIMP for another opcode or a class other than IN (RFC 1035), and
// no answer at all when they are responses or too short to have a header,
// since answering those could only serve a reflection attack. Answers
// over UDP fit the client's EDNS0 buffer size, or 512 bytes without EDNS0,
// and carry the TC bit when records had to be left out, so that the client
// asks again over TCP.
package privdns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Config is one network's server.
type Config struct {
	// Addr is the host:port to listen on, over UDP and TCP, e.g.
	// "10.208.0.1:53". Port 0 picks a free port (UDP's, which TCP then takes).
	Addr string
	// Domain is the project's zone without the trailing dot, e.g.
	// "shop.internal".
	Domain string
	// Lookup returns the addresses of a private name: lowercased, with no
	// trailing dot and no Domain suffix ("db", "2.db", "db-alias"). Nil or
	// empty means the name is unknown. It is called once per query, from
	// several goroutines at once.
	Lookup func(name string) []netip.Addr
	// Upstreams are the host:port of the resolvers of every other name, in
	// order. With none, those names get SERVFAIL.
	Upstreams []string
	// TTL is the TTL of the answers, in seconds; 0 means 5.
	TTL uint32
	// Log receives the server's errors; nil discards them.
	Log *slog.Logger
}

// ErrConfig is wrapped by the errors of Start for a configuration it
// cannot use.
var ErrConfig = errors.New("privdns: bad config")

// Server is one network's running DNS server, from Start until Close.
type Server struct {
	cfg       Config
	zone      string // Domain, lowercased, without trailing dot
	upstreams []string
	log       *slog.Logger

	udp, tcp *dns.Server
	udpAddr  net.Addr

	ctx    context.Context // cancelled by Close, to end forwarded queries
	cancel context.CancelFunc
	served sync.WaitGroup // the two serving goroutines

	closeOnce sync.Once
	closeErr  error
}

// Start binds cfg.Addr over UDP and then TCP (on the port UDP got), serves
// both in goroutines and returns once they are listening. It binds both or
// neither.
func Start(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("privdns: listen udp %s: %w", cfg.Addr, err)
	}
	s.udpAddr = pc.LocalAddr()
	if err := s.checkLoop(); err != nil {
		pc.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", s.udpAddr.String())
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("privdns: listen tcp %s: %w", s.udpAddr, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.udp = &dns.Server{PacketConn: pc, UDPSize: dns.MaxMsgSize}
	s.tcp = &dns.Server{Listener: ln}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		srv.Handler = dns.HandlerFunc(s.serveDNS)
		srv.MsgAcceptFunc = acceptQuery
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		errc := make(chan error, 1)
		s.served.Go(func() {
			if err := srv.ActivateAndServe(); err != nil {
				errc <- err
			}
		})
		select {
		case <-started:
		case err := <-errc:
			// The server that failed was never started; the other one, if
			// it was, stops here, and then both sockets are closed.
			s.cancel()
			s.udp.Shutdown()
			s.tcp.Shutdown()
			s.served.Wait()
			pc.Close()
			ln.Close()
			return nil, fmt.Errorf("privdns: serve %s: %w", s.udpAddr, err)
		}
	}
	return s, nil
}

// newServer checks cfg and fills in its defaults.
func newServer(cfg Config) (*Server, error) {
	zone := strings.TrimSuffix(strings.ToLower(cfg.Domain), ".")
	if _, ok := dns.IsDomainName(zone); !ok || zone == "" {
		return nil, fmt.Errorf("%w: domain %q is not a domain name", ErrConfig, cfg.Domain)
	}
	if cfg.Lookup == nil {
		return nil, fmt.Errorf("%w: no Lookup", ErrConfig)
	}
	for _, u := range cfg.Upstreams {
		if _, err := netip.ParseAddrPort(u); err != nil {
			return nil, fmt.Errorf("%w: upstream %q is not ip:port", ErrConfig, u)
		}
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{
		cfg:       cfg,
		zone:      zone,
		upstreams: cfg.Upstreams,
		log:       log.With("component", "privdns", "zone", zone),
	}, nil
}

// checkLoop refuses an upstream that is the server itself: every query
// forwarded to it would come back, again and again.
func (s *Server) checkLoop() error {
	self, err := netip.ParseAddrPort(s.udpAddr.String())
	if err != nil {
		return nil // not an ip:port: nothing to compare
	}
	for _, u := range s.upstreams {
		if up := netip.MustParseAddrPort(u); up.Addr().Unmap() == self.Addr().Unmap() && up.Port() == self.Port() {
			return fmt.Errorf("%w: upstream %s is the server itself", ErrConfig, u)
		}
	}
	return nil
}

// Addr is the UDP address the server is bound to; TCP has the same one.
func (s *Server) Addr() net.Addr { return s.udpAddr }

// Close stops both listeners, ends the queries being forwarded and waits
// for the serving goroutines. Calling it again returns the first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		var errs []error
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			if err := srv.Shutdown(); err != nil {
				errs = append(errs, err)
			}
		}
		s.served.Wait()
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("privdns: close %s: %w", s.udpAddr, err)
		}
	})
	return s.closeErr
}

// acceptQuery lets only standard queries with one question reach the
// handler: the server answers NOTIMP to other opcodes (miekg/dns's default
// also lets NOTIFY through), FORMERR to a query without exactly one
// question, and nothing to a response, which could only be a reflection.
func acceptQuery(h dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if h.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	if opcode := int(h.Bits>>11) & 0xF; opcode != dns.OpcodeQuery {
		return dns.MsgRejectNotImplemented
	}
	return dns.DefaultMsgAcceptFunc(h)
}
