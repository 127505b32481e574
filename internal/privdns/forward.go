package privdns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// upstreamTimeout bounds one exchange with one upstream.
const upstreamTimeout = 2 * time.Second

// forward asks the upstreams in turn (rule 5) and returns the first answer
// that is not SERVFAIL or REFUSED, or SERVFAIL when there is none.
func (s *Server) forward(req *dns.Msg, tcp bool) *dns.Msg {
	for _, up := range s.upstreams {
		r, err := s.exchange(req, up, tcp)
		if err == nil && !tcp && r.Truncated {
			r, err = s.exchange(req, up, true)
		}
		if err == nil && (r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused) {
			err = fmt.Errorf("answered %s", dns.RcodeToString[r.Rcode])
		}
		if err != nil {
			s.log.Debug("upstream failed", "upstream", up, "name", req.Question[0].Name, "err", err)
			continue
		}
		return r
	}
	m := new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// errMismatch is an upstream answer to another question than the one asked.
var errMismatch = errors.New("answer does not match the question")

// exchange sends req to upstream under a fresh message ID (see the package
// comment) and returns the answer under the client's ID. Close ends it at
// once.
func (s *Server) exchange(req *dns.Msg, upstream string, tcp bool) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(s.ctx, upstreamTimeout)
	defer cancel()
	c := &dns.Client{Net: "udp", UDPSize: dns.MaxMsgSize, Timeout: upstreamTimeout}
	if tcp {
		c.Net = "tcp"
	}
	conn, err := c.DialContext(ctx, upstream)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// The client library only reads the context's deadline: a cancelled
	// context must unblock the read itself.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	q := req.Copy()
	q.Id = dns.Id()
	r, _, err := c.ExchangeWithConnContext(ctx, q, conn)
	if err != nil {
		return nil, err
	}
	if len(r.Question) != 1 || !sameQuestion(r.Question[0], q.Question[0]) {
		return nil, errMismatch
	}
	r.Id = req.Id
	return r, nil
}

func sameQuestion(a, b dns.Question) bool {
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}
