package proxy

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// echoHeaders answers the request headers it got, as JSON.
func echoHeaders(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	json.NewEncoder(w).Encode(h)
}

func TestForwardedHeaders(t *testing.T) {
	addr := backend(t, echoHeaders)
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	tests := []struct {
		name   string
		remote string
		tls    bool
		in     map[string]string
		want   map[string]string // "" = absent
	}{
		{
			name:   "direct client",
			remote: "192.0.2.7:4711",
			want: map[string]string{
				"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test",
				"X-Real-Ip": "192.0.2.7", "Forwarded": `for=192.0.2.7;host="app.test";proto=http`, "Host": "app.test",
			},
		},
		{
			name:   "untrusted client's headers are replaced",
			remote: "192.0.2.7:4711",
			in: map[string]string{
				"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.test",
				"X-Real-Ip": "1.2.3.4", "Forwarded": "for=1.2.3.4",
			},
			want: map[string]string{
				"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.test",
				"X-Real-Ip": "192.0.2.7", "Forwarded": `for=192.0.2.7;host="app.test";proto=http`,
			},
		},
		{
			name:   "trusted proxy's headers are extended",
			remote: "10.1.2.3:4711",
			in: map[string]string{
				"X-Forwarded-For": "198.51.100.9, 10.9.9.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.test",
				"Forwarded": `for=198.51.100.9;proto=https, for=10.9.9.9`,
			},
			want: map[string]string{
				"X-Forwarded-For": "198.51.100.9, 10.9.9.9, 10.1.2.3", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.test",
				"X-Real-Ip": "198.51.100.9",
				"Forwarded": `for=198.51.100.9;proto=https, for=10.9.9.9, for=10.1.2.3;host="app.test";proto=http`,
			},
		},
		{
			name:   "untrusted client's other forwarding headers are dropped",
			remote: "192.0.2.7:4711",
			in: map[string]string{
				"X-Forwarded-Port": "8443", "X-Forwarded-Prefix": "/evil", "X-Forwarded-Server": "evil.test",
				"X-Forwarded-Ssl": "on", "X-Forwarded-Uri": "/admin", "X_Forwarded_For": "1.2.3.4",
				"X_Real_IP": "1.2.3.4", "x_forwarded_host": "evil.test",
			},
			want: map[string]string{
				"X-Forwarded-Port": "", "X-Forwarded-Prefix": "", "X-Forwarded-Server": "", "X-Forwarded-Ssl": "",
				"X-Forwarded-Uri": "", "X_Forwarded_For": "", "X_Real_IP": "", "x_forwarded_host": "",
				"X-Forwarded-For": "192.0.2.7", "X-Real-Ip": "192.0.2.7",
			},
		},
		{
			name:   "trusted proxy's other forwarding headers are kept, but not underscore spellings",
			remote: "10.1.2.3:4711",
			in: map[string]string{
				"X-Forwarded-Port": "443", "X-Forwarded-Prefix": "/app", "X_Forwarded_For": "1.2.3.4",
			},
			want: map[string]string{
				"X-Forwarded-Port": "443", "X-Forwarded-Prefix": "/app", "X_Forwarded_For": "", "X-Forwarded-For": "10.1.2.3",
			},
		},
		{
			name:   "trusted proxy without headers",
			remote: "10.1.2.3:4711",
			tls:    true,
			want: map[string]string{
				"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.test", "X-Real-Ip": "10.1.2.3",
				"Forwarded": `for=10.1.2.3;host="app.test";proto=https`,
			},
		},
		{
			name:   "ipv6 peer",
			remote: "[2001:db9::1]:4711",
			want:   map[string]string{"X-Forwarded-For": "2001:db9::1", "Forwarded": `for="[2001:db9::1]";host="app.test";proto=http`},
		},
		{
			name:   "hop-by-hop headers removed",
			remote: "192.0.2.7:4711",
			in: map[string]string{
				"Connection": "keep-alive, X-Secret", "X-Secret": "s", "Keep-Alive": "timeout=5", "Te": "trailers",
				"Proxy-Authorization": "Basic eA==", "Proxy-Connection": "keep-alive", "Upgrade": "h2c", "X-Kept": "k",
			},
			want: map[string]string{
				"Connection": "", "X-Secret": "", "Keep-Alive": "", "Te": "", "Proxy-Authorization": "",
				"Proxy-Connection": "", "Upgrade": "", "X-Kept": "k",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProxy(t, Config{TrustedProxies: trusted})
			p.Update(oneRoute("app.test", "", addr))
			r := httpRequest("GET", "http://app.test/")
			if tt.tls {
				r = httpRequest("GET", "https://app.test/")
			}
			r.RemoteAddr = tt.remote
			for k, v := range tt.in {
				r.Header.Set(k, v)
			}
			w := newRecorder()
			p.ServeHTTP(w, r)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			var got http.Header
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				if g := strings.Join(got[http.CanonicalHeaderKey(k)], " | "); g != want {
					t.Errorf("%s: got %q, want %q", k, g, want)
				}
			}
		})
	}
}

func TestClientAddrs(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name        string
		remote      string
		xff         []string
		fwd         []string
		wantClient  string
		wantTrusted bool
	}{
		{"untrusted ignores headers", "192.0.2.1:1", []string{"1.1.1.1"}, nil, "192.0.2.1", false},
		{"trusted, one hop", "10.0.0.1:1", []string{"198.51.100.1"}, nil, "198.51.100.1", true},
		{"rightmost untrusted", "10.0.0.1:1", []string{"6.6.6.6, 198.51.100.1, 10.0.0.2"}, nil, "198.51.100.1", true},
		{"several header lines", "10.0.0.1:1", []string{"6.6.6.6", "198.51.100.1,10.0.0.2"}, nil, "198.51.100.1", true},
		{"all trusted: leftmost", "10.0.0.1:1", []string{"10.0.0.3, 10.0.0.2"}, nil, "10.0.0.3", true},
		{"garbage stops the walk", "10.0.0.1:1", []string{"6.6.6.6, junk, 10.0.0.2"}, nil, "10.0.0.2", true},
		{"with ports and brackets", "10.0.0.1:1", []string{"[2001:db8::5]:443"}, nil, "2001:db8::5", true},
		{"forwarded", "[::1]:1", nil, []string{`for=198.51.100.4;proto=https, for="[::1]"`}, "198.51.100.4", true},
		{"forwarded ipv6 quoted", "10.0.0.1:1", nil, []string{`For="[2001:db8::9]:80"`}, "2001:db8::9", true},
		{"trusted, no header", "10.0.0.1:1", nil, nil, "10.0.0.1", true},
		{"mapped v4 peer", "[::ffff:10.0.0.1]:1", []string{"198.51.100.1"}, nil, "198.51.100.1", true},
		{"no port", "192.0.2.1", nil, nil, "192.0.2.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httpRequest("GET", "http://x/")
			r.RemoteAddr = tt.remote
			r.Header["X-Forwarded-For"] = tt.xff
			r.Header["Forwarded"] = tt.fwd
			_, client, tr := clientAddrs(r, trusted)
			if client.String() != tt.wantClient || tr != tt.wantTrusted {
				t.Errorf("got %v trusted=%v, want %v trusted=%v", client, tr, tt.wantClient, tt.wantTrusted)
			}
		})
	}
}
