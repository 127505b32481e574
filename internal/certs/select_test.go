package certs

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

func TestFilesFromRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := store.NewMemory()
		t.Cleanup(st.Close)
		box := testBox(t)
		certPEM, keyPEM := selfSigned(t, "shop.example.org")
		putFiles(t, st, box, "shop.example.org", "p", certPEM, keyPEM)

		m, _ := startManager(t, Config{}, Deps{Store: st, Opener: box})
		m.Manage(ctx, []Want{{Host: "shop.example.org", Mode: client.TLSFiles, Project: "p", Service: "web"}})
		synctest.Wait()
		c, err := m.GetCertificate(hello("shop.example.org"))
		if err != nil {
			t.Fatal(err)
		}
		if got := pemOf(leafOf(t, c)); string(got) != string(certPEM) {
			t.Fatal("served another certificate than the user's")
		}

		// Replaced by the user: the new one is served, and Changed says so.
		changed := m.Changed()
		cert2, key2 := selfSigned(t, "shop.example.org")
		putFiles(t, st, box, "shop.example.org", "p", cert2, key2)
		synctest.Wait()
		if !isClosed(changed) {
			t.Error("Changed did not fire for a replaced certificate")
		}
		c, _ = m.GetCertificate(hello("shop.example.org"))
		if got := pemOf(leafOf(t, c)); string(got) != string(cert2) {
			t.Fatal("the replaced certificate is still served")
		}

		// Another project's route does not get this project's certificate.
		m.Manage(ctx, []Want{{Host: "shop.example.org", Mode: client.TLSFiles, Project: "q", Service: "web"}})
		if _, err := m.GetCertificate(hello("shop.example.org")); !errors.Is(err, ErrNotReady) {
			t.Fatalf("other project: got %v, want ErrNotReady", err)
		}
		m.Manage(ctx, []Want{{Host: "shop.example.org", Mode: client.TLSFiles, Project: "p", Service: "web"}})

		// A record whose key does not open is not served.
		b := []byte(`{"cert":"` + "bm90IGEgY2VydA==" + `","sealed_key":"Z2FyYmFnZQ==","project":"p"}`)
		if _, err := st.Txn(ctx, nil, store.Put(FilesKey("shop.example.org"), b)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := m.GetCertificate(hello("shop.example.org")); !errors.Is(err, ErrNotReady) {
			t.Fatalf("broken record: got %v, want ErrNotReady", err)
		}

		// Deleted: gone.
		putFiles(t, st, box, "shop.example.org", "p", certPEM, keyPEM)
		synctest.Wait()
		if _, err := m.GetCertificate(hello("shop.example.org")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Txn(ctx, nil, store.Delete(FilesKey("shop.example.org"))); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := m.GetCertificate(hello("shop.example.org")); !errors.Is(err, ErrNotReady) {
			t.Fatalf("deleted record: got %v, want ErrNotReady", err)
		}
	})
}

func TestFilesKey(t *testing.T) {
	for _, tt := range []struct{ host, want string }{
		{"Shop.Example.org.", "/ruche/tlsfiles/shop.example.org"},
		{"*.example.org", "/ruche/tlsfiles/*.example.org"},
	} {
		if got := FilesKey(tt.host); got != tt.want {
			t.Errorf("FilesKey(%q): got %q, want %q", tt.host, got, tt.want)
		}
	}
}

// GetCertificate picks by SNI: the exact host, then a wildcard one level up.
func TestSelection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := store.NewMemory()
		t.Cleanup(st.Close)
		box := testBox(t)
		wc, wk := selfSigned(t, "*.example.org")
		putFiles(t, st, box, "*.example.org", "p", wc, wk)
		m, _ := startManager(t, Config{}, Deps{Store: st, CA: newCA(t), Opener: box})
		m.Manage(ctx, []Want{
			{Host: "app.example.org", Mode: client.TLSInternal},
			{Host: "*.example.org", Mode: client.TLSFiles, Project: "p"},
			{Host: "api.example.org", Mode: client.TLSFiles, Project: "p"}, // no record of its own
			{Host: "acme.example.net", Mode: client.TLSACME},
			{Host: "plain.example.org", Mode: client.TLSNone},
		})
		synctest.Wait()

		tests := []struct {
			sni     string
			names   []string // DNS names of the certificate served
			wantErr error
		}{
			{"app.example.org", []string{"app.example.org"}, nil},
			{"APP.Example.ORG.", []string{"app.example.org"}, nil},
			{"other.example.org", []string{"*.example.org"}, nil},
			{"api.example.org", []string{"*.example.org"}, nil},
			{"plain.example.org", []string{"*.example.org"}, nil}, // no TLS of its own; the wildcard covers it
			{"a.b.example.org", nil, ErrUnknownHost},
			{"example.org", nil, ErrUnknownHost},
			{"unknown.test", nil, ErrUnknownHost},
			{"", nil, ErrNoServerName},
			{"acme.example.net", nil, ErrNoACME},
		}
		for _, tt := range tests {
			c, err := m.GetCertificate(hello(tt.sni))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("%q: got %v, want %v", tt.sni, err, tt.wantErr)
				}
				continue
			}
			if err != nil {
				t.Errorf("%q: %v", tt.sni, err)
				continue
			}
			if got := leafOf(t, c).DNSNames; !slices.Equal(got, tt.names) {
				t.Errorf("%q: got a certificate for %v, want %v", tt.sni, got, tt.names)
			}
		}
	})
}

func TestHTTPChallengeWithoutACME(t *testing.T) {
	st := store.NewMemory()
	t.Cleanup(st.Close)
	m, err := New(Config{}, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/.well-known/acme-challenge/abc", "/index.html"} {
		w := httptest.NewRecorder()
		if m.HandleHTTPChallenge(w, httptest.NewRequest(http.MethodGet, "http://app.example.org"+path, nil)) {
			t.Errorf("%s: handled without ACME", path)
		}
		if w.Body.Len() != 0 || len(w.Header()) != 0 {
			t.Errorf("%s: wrote a response", path)
		}
	}
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := store.NewMemory()
		t.Cleanup(st.Close)
		box := testBox(t)
		reg := prometheus.NewRegistry()
		fc, fk := selfSigned(t, "shop.example.org") // 90 days
		putFiles(t, st, box, "shop.example.org", "", fc, fk)
		m, _ := startManager(t, Config{InternalLifetime: 10 * 24 * time.Hour}, Deps{Store: st, CA: newCA(t), Opener: box, Metrics: reg})
		m.Manage(ctx, []Want{
			{Host: "a.example.org", Mode: client.TLSInternal},
			{Host: "b.example.org", Mode: client.TLSInternal},
			{Host: "shop.example.org", Mode: client.TLSFiles},
		})
		synctest.Wait()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, mm := range mf.GetMetric() {
				got[mf.GetName()+labels(mm)] = value(mm)
			}
		}
		// Expiry is a Unix time in seconds (Prometheus's base unit): the
		// certificates end 10 and 90 days from now, within 15 minutes.
		now := float64(time.Now().Unix())
		want := map[string]float64{
			`ruche_certs_certificates{mode="internal"}`:                        2,
			`ruche_certs_certificates{mode="files"}`:                           1,
			`ruche_certs_certificates{mode="acme"}`:                            0,
			`ruche_certs_expiry_seconds{host="a.example.org",mode="internal"}`: now + 10*86400,
			`ruche_certs_expiry_seconds{host="shop.example.org",mode="files"}`: now + 90*86400,
			`ruche_certs_internal_issued_total`:                                2,
		}
		for k, w := range want {
			if g, ok := got[k]; !ok || g < w-900 || g > w+900 {
				t.Errorf("%s: got %v (present %v), want %v", k, g, ok, w)
			}
		}
	})
}

func labels(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}
