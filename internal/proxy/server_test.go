package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testCA is a throw-away CA with a certificate for the test hosts.
type testCA struct {
	pool   *x509.CertPool
	pemCA  []byte
	leaf   tls.Certificate
	acme   tls.Certificate // stands for a TLS-ALPN-01 challenge certificate
	hellos chan string     // SNI of each GetCertificate call
}

func newTestCA(t *testing.T, hosts ...string) *testCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ruche proxy test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(cn string, names []string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, DNSNames: names,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	c := &testCA{pool: x509.NewCertPool(), leaf: leaf(hosts[0], hosts), acme: leaf("acme challenge", hosts), hellos: make(chan string, 100)}
	c.pool.AddCert(ca)
	c.pemCA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return c
}

func (c *testCA) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	select {
	case c.hellos <- h.ServerName:
	default:
	}
	if slices.Contains(h.SupportedProtos, "acme-tls/1") {
		return &c.acme, nil
	}
	return &c.leaf, nil
}

func (c *testCA) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != "/.well-known/acme-challenge/token1" {
		return false
	}
	io.WriteString(w, "token1.thumbprint")
	return true
}

// tlsProxy runs a proxy with both listeners and the test CA.
func tlsProxy(t *testing.T, ca *testCA, table *Table) (p *Proxy, httpAddr, httpsAddr string) {
	t.Helper()
	return tlsProxyWith(t, ca, table, Config{})
}

// tlsProxyWith is tlsProxy with cfg's other settings.
func tlsProxyWith(t *testing.T, ca *testCA, table *Table, cfg Config) (p *Proxy, httpAddr, httpsAddr string) {
	t.Helper()
	cfg.HTTPAddr, cfg.HTTPSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	p = New(cfg, Deps{Log: testLog(t), Certs: ca})
	t.Cleanup(p.closePools)
	p.Update(table)
	httpAddr, httpsAddr = runProxy(t, p)
	return p, httpAddr, httpsAddr
}

// h2Client is an HTTPS client trusting ca that reaches every host at
// httpsAddr, speaking HTTP/2.
func h2Client(t *testing.T, ca *testCA, httpsAddr string, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", httpsAddr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

func TestHTTP2OverTLS(t *testing.T) {
	ca := newTestCA(t, "app.test")
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto")+" "+string(b))
	})
	tab := oneRoute("app.test", "", addr)
	tab.Routes[0].TLS = true
	_, _, httpsAddr := tlsProxy(t, ca, tab)

	c := h2Client(t, ca, httpsAddr, 30*time.Second)
	for _, tt := range []struct {
		method string
		body   io.Reader
		want   string
	}{
		{"GET", nil, "https "},
		{"POST", strings.NewReader("over h2"), "https over h2"},
		{"POST", io.MultiReader(strings.NewReader("streamed")), "https streamed"},
	} {
		req, _ := http.NewRequest(tt.method, "https://app.test/", tt.body)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Errorf("%s: protocol %s, want HTTP/2", tt.method, resp.Proto)
		}
		if resp.StatusCode != 200 || string(b) != tt.want {
			t.Errorf("%s: got %d %q, want 200 %q", tt.method, resp.StatusCode, b, tt.want)
		}
	}
}

// TestHTTP1OverTLS: an HTTP/1.1 client over TLS is served by h1 behind
// the front's handshake: its requests are known to be HTTPS, its
// connection is kept.
func TestHTTP1OverTLS(t *testing.T) {
	ca := newTestCA(t, "app.test")
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto")+" "+r.Proto)
	})
	tab := oneRoute("app.test", "", addr)
	tab.Routes[0].TLS = true
	_, _, httpsAddr := tlsProxy(t, ca, tab)

	conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{RootCAs: ca.pool, ServerName: "app.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("ALPN: %q, want http/1.1", p)
	}
	br := bufio.NewReader(conn)
	for i := range 3 {
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on one connection: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "https HTTP/1.1" || resp.Close {
			t.Errorf("request %d: %d %q (close %v), want 200 \"https HTTP/1.1\", kept", i, resp.StatusCode, b, resp.Close)
		}
	}
}

func TestRedirectAndChallenges(t *testing.T) {
	ca := newTestCA(t, "app.test", "plain.test")
	tab := &Table{Routes: []Route{
		{Name: "p/app", Host: "app.test", TLS: true, Upstreams: []Upstream{{ID: "a", Addr: backend(t, named("app"))}}},
		{Name: "p/plain", Host: "plain.test", Upstreams: []Upstream{{ID: "b", Addr: backend(t, named("plain"))}}},
	}}
	_, httpAddr, httpsAddr := tlsProxy(t, ca, tab)
	_, httpsPort, _ := net.SplitHostPort(httpsAddr)
	c := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tests := []struct {
		name, method, host, path string
		wantStatus               int
		wantLocation, wantBody   string
	}{
		{"tls route redirects", "GET", "app.test", "/a/b?x=1", 308, "https://app.test:" + httpsPort + "/a/b?x=1", ""},
		{"post keeps its method", "POST", "app.test:80", "/form", 308, "https://app.test:" + httpsPort + "/form", ""},
		{"plain route is proxied", "GET", "plain.test", "/", 200, "", "plain"},
		{"behind a trusted TLS terminator", "GET", "app.test", "/x-forwarded-https", 200, "", "app"},
		{"http-01 challenge", "GET", "app.test", "/.well-known/acme-challenge/token1", 200, "", "token1.thumbprint"},
		{"http-01 challenge, unknown host", "GET", "new.test", "/.well-known/acme-challenge/token1", 200, "", "token1.thumbprint"},
		{"other challenge token", "GET", "new.test", "/.well-known/acme-challenge/nope", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://"+httpAddr+tt.path, nil)
			req.Host = tt.host
			if tt.path == "/x-forwarded-https" {
				req.Header.Set("X-Forwarded-Proto", "https") // from 127.0.0.1, trusted here
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Location"); got != tt.wantLocation {
				t.Errorf("Location: got %q, want %q", got, tt.wantLocation)
			}
			if tt.wantBody != "" && string(b) != tt.wantBody {
				t.Errorf("body: got %q, want %q", b, tt.wantBody)
			}
		})
	}

	t.Run("tls-alpn-01", func(t *testing.T) {
		conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{ServerName: "app.test", NextProtos: []string{"acme-tls/1"}, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st := conn.ConnectionState()
		if st.NegotiatedProtocol != "acme-tls/1" || st.PeerCertificates[0].Subject.CommonName != "acme challenge" {
			t.Errorf("got protocol %q, certificate %q", st.NegotiatedProtocol, st.PeerCertificates[0].Subject.CommonName)
		}
		// The proxy closes the connection after the handshake.
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("after the handshake: got %v, want EOF", err)
		}
	})
}

func TestCurlHTTP2(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed")
		}
		t.Skip("curl is not installed")
	}
	ca := newTestCA(t, "app.test")
	tab := oneRoute("app.test", "", backend(t, named("web")))
	tab.Routes[0].TLS = true
	_, _, httpsAddr := tlsProxy(t, ca, tab)
	_, port, _ := net.SplitHostPort(httpsAddr)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.pemCA, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ flag, want string }{{"--http2", "2 200 web"}, {"--http1.1", "1.1 200 web"}} {
		out, err := exec.Command(curl, "-sS", "--max-time", "30", tt.flag, "--cacert", caFile,
			"--resolve", "app.test:"+port+":127.0.0.1", "-w", "%{http_version} %{http_code} ", "-o", "/dev/null",
			"-D", "-", "https://app.test:"+port+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", tt.flag, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		got := strings.TrimSpace(lines[len(lines)-1])
		backendName := ""
		for _, l := range lines {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "x-backend") {
				backendName = strings.TrimSpace(v)
			}
		}
		if got+" "+backendName != tt.want {
			t.Errorf("curl %s: got %q, want %q", tt.flag, got+" "+backendName, tt.want)
		}
	}
}

func TestRunWithoutListeners(t *testing.T) {
	p := newTestProxy(t, Config{HTTPSAddr: "127.0.0.1:0"}) // HTTPS without certificates
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-p.Ready()
	if h, s := p.Addrs(); h != nil || s != nil {
		t.Errorf("listening on %v %v", h, s)
	}
	if err := p.Run(ctx); err != ErrRunning {
		t.Errorf("second Run: got %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
