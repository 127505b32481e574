package daemon

import (
	"crypto/tls"
	"errors"
	"testing"
)

func TestAgentCertsSelection(t *testing.T) {
	exact, wild := &tls.Certificate{}, &tls.Certificate{}
	c := &agentCerts{}
	if _, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.example.org"}); !errors.Is(err, errNoCert) {
		t.Errorf("before any set: got %v, want errNoCert", err)
	}
	m := map[string]*tls.Certificate{"a.example.org": exact, "*.example.org": wild}
	c.certs.Store(&m)
	tests := []struct {
		name  string
		hello tls.ClientHelloInfo
		want  *tls.Certificate
		err   error
	}{
		{name: "exact", hello: tls.ClientHelloInfo{ServerName: "A.example.org."}, want: exact},
		{name: "wildcard", hello: tls.ClientHelloInfo{ServerName: "b.example.org"}, want: wild},
		{name: "two levels down", hello: tls.ClientHelloInfo{ServerName: "x.b.example.org"}, err: errNoCert},
		{name: "unknown", hello: tls.ClientHelloInfo{ServerName: "other.test"}, err: errNoCert},
		{name: "no server name", hello: tls.ClientHelloInfo{}, err: errNoCert},
		{name: "tls-alpn-01", hello: tls.ClientHelloInfo{ServerName: "a.example.org", SupportedProtos: []string{acmeTLSProto}}, err: errNoALPN01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.GetCertificate(&tt.hello)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("got %p %v, want %p %v", got, err, tt.want, tt.err)
			}
		})
	}
}
