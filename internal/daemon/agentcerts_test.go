package daemon

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"testing"

	"github.com/ruche-platform/ruche/internal/agent"
	"github.com/ruche-platform/ruche/internal/pki"
	"github.com/ruche-platform/ruche/internal/store"
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

// TestAgentCertsALPN01: a TLS-ALPN-01 validation handshake gets the
// certificate the managers build for the pending challenge of its name.
func TestAgentCertsALPN01(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	good := leafBundle(t, ca, "a.example.org")
	src := &chanRoutes{alpn: map[string]agent.CertBundle{
		"a.example.org": good,
		"b.example.org": {Host: "b.example.org", Chain: [][]byte{[]byte("junk")}, Key: good.Key},
	}}
	c := &agentCerts{node: "n3", src: src, log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name, host string
		want       []byte // the leaf, DER
		err        error
	}{
		{name: "pending challenge", host: "A.example.org.", want: good.Chain[0]},
		{name: "no challenge", host: "c.example.org", err: store.ErrNotFound},
		{name: "bad certificate", host: "b.example.org", err: nil},
		{name: "no server name", host: "", err: errNoCert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.host, SupportedProtos: []string{acmeTLSProto}})
			switch {
			case tt.want != nil:
				if err != nil || !bytes.Equal(got.Certificate[0], tt.want) {
					t.Errorf("got %v, want the managers' certificate", err)
				}
			case err == nil || (tt.err != nil && !errors.Is(err, tt.err)):
				t.Errorf("got %v, want an error (%v)", err, tt.err)
			}
		})
	}
}
