package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

// A real TLS handshake with SNI gets an internal certificate that verifies
// against the cluster CA for that host.
func TestInternalHandshake(t *testing.T) {
	st := store.NewMemory()
	t.Cleanup(st.Close)
	ca := newCA(t)
	m, _ := startManager(t, Config{}, Deps{Store: st, CA: ca, Opener: testBox(t)})
	m.Manage(context.Background(), []Want{{Host: "pad.example.org", Mode: client.TLSInternal, Project: "p", Service: "web"}})

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: m.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "pad.example.org", RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	conn.Close()
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "other.example.org", RootCAs: ca.Pool()}); err == nil {
		t.Fatal("handshake for an unknown host succeeded")
	}
}

func TestInternalIssuedStoredAndShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := store.NewMemory()
		t.Cleanup(st.Close)
		ca := newCA(t)
		box := testBox(t)
		want := []Want{{Host: "pad.example.org", Mode: client.TLSInternal, Project: "p", Service: "web"}}

		a, _ := startManager(t, Config{}, Deps{Store: st, CA: ca, Opener: box})
		a.Manage(ctx, want)
		synctest.Wait()

		ca1, err := a.GetCertificate(hello("pad.example.org"))
		if err != nil {
			t.Fatal(err)
		}
		leaf := leafOf(t, ca1)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "pad.example.org"}); err != nil {
			t.Fatalf("verify: %v", err)
		}
		kv, err := st.Get(ctx, internalKey("pad.example.org"))
		if err != nil {
			t.Fatalf("not stored: %v", err)
		}
		var rec internalRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Key != nil || rec.SealedKey == nil || bytes.Contains(kv.Value, []byte("PRIVATE KEY")) {
			t.Fatalf("key not sealed in the store: %s", kv.Value)
		}

		// Another node serves the stored certificate instead of issuing one;
		// so does a node without the CA.
		for _, name := range []string{"second node", "node without CA"} {
			deps := Deps{Store: st, CA: ca, Opener: box}
			if name == "node without CA" {
				deps.CA = nil
			}
			b, stop := startManager(t, Config{}, deps)
			b.Manage(ctx, want)
			synctest.Wait()
			cb, err := b.GetCertificate(hello("pad.example.org"))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := leafOf(t, cb); !got.Equal(leaf) {
				t.Errorf("%s: got serial %v, want the stored %v", name, got.SerialNumber, leaf.SerialNumber)
			}
			stop()
		}
	})
}

// Two nodes racing to issue end up serving the same certificate.
func TestInternalRaceConverges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := store.NewMemory()
		t.Cleanup(st.Close)
		ca := newCA(t)
		want := []Want{{Host: "a.example.org", Mode: client.TLSInternal}, {Host: "b.example.org", Mode: client.TLSInternal}}
		var ms []*Manager
		for range 3 {
			m, _ := startManager(t, Config{}, Deps{Store: st, CA: ca, Opener: testBox(t)})
			ms = append(ms, m)
		}
		for _, m := range ms {
			// A handshake before the first reconcile issues on the spot.
			if _, err := m.GetCertificate(hello("a.example.org")); !errors.Is(err, ErrUnknownHost) {
				t.Fatalf("before Manage: got %v, want ErrUnknownHost", err)
			}
			m.Manage(ctx, want)
			if _, err := m.GetCertificate(hello("a.example.org")); err != nil {
				t.Fatalf("on-demand issue: %v", err)
			}
		}
		synctest.Wait()
		for _, host := range []string{"a.example.org", "b.example.org"} {
			kv, err := st.Get(ctx, internalKey(host))
			if err != nil {
				t.Fatal(err)
			}
			var rec internalRecord
			_ = json.Unmarshal(kv.Value, &rec)
			for i, m := range ms {
				c, err := m.GetCertificate(hello(host))
				if err != nil {
					t.Fatal(err)
				}
				if got := pemOf(leafOf(t, c)); !bytes.Equal(got, rec.Cert) {
					t.Errorf("node %d serves another %s certificate than the stored one", i, host)
				}
			}
		}
	})
}

func TestInternalRenewedAtTwoThirds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := store.NewMemory()
		t.Cleanup(st.Close)
		ca := newCA(t)
		// Leaves are backdated an hour: 3h ahead makes a 4h life, renewed
		// 2h40 after NotBefore, that is 1h40 from now.
		m, _ := startManager(t, Config{InternalLifetime: 3 * time.Hour}, Deps{Store: st, CA: ca, Opener: testBox(t)})
		m.Manage(ctx, []Want{{Host: "pad.example.org", Mode: client.TLSInternal}})
		synctest.Wait()
		c1, err := m.GetCertificate(hello("pad.example.org"))
		if err != nil {
			t.Fatal(err)
		}
		first := leafOf(t, c1)

		time.Sleep(90 * time.Minute)
		synctest.Wait()
		c2, _ := m.GetCertificate(hello("pad.example.org"))
		if !leafOf(t, c2).Equal(first) {
			t.Fatal("renewed before 2/3 of the lifetime")
		}

		time.Sleep(15 * time.Minute)
		synctest.Wait()
		c3, _ := m.GetCertificate(hello("pad.example.org"))
		renewed := leafOf(t, c3)
		if renewed.Equal(first) {
			t.Fatal("not renewed after 2/3 of the lifetime")
		}
		if !renewed.NotAfter.After(first.NotAfter) {
			t.Errorf("renewed certificate expires %v, not after the old %v", renewed.NotAfter, first.NotAfter)
		}
		kv, _ := st.Get(ctx, internalKey("pad.example.org"))
		var rec internalRecord
		_ = json.Unmarshal(kv.Value, &rec)
		if !bytes.Equal(rec.Cert, pemOf(renewed)) {
			t.Error("the renewed certificate is not the stored one")
		}
	})
}

// A stored certificate from another CA (the CA was replaced) is reissued.
func TestInternalForeignCertificateReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := store.NewMemory()
		t.Cleanup(st.Close)
		old, ca := newCA(t), newCA(t)
		certPEM, keyPEM, err := old.Leaf([]string{"pad.example.org"}, time.Hour*24)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(internalRecord{Cert: certPEM, Key: keyPEM})
		if _, err := st.Txn(ctx, nil, store.Put(internalKey("pad.example.org"), b)); err != nil {
			t.Fatal(err)
		}
		m, _ := startManager(t, Config{}, Deps{Store: st, CA: ca})
		m.Manage(ctx, []Want{{Host: "pad.example.org", Mode: client.TLSInternal}})
		synctest.Wait()
		c, err := m.GetCertificate(hello("pad.example.org"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leafOf(t, c).Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "pad.example.org"}); err != nil {
			t.Fatalf("serving a certificate of the old CA: %v", err)
		}
		// Without a sealer the key is stored in clear (documented).
		kv, _ := st.Get(ctx, internalKey("pad.example.org"))
		var rec internalRecord
		_ = json.Unmarshal(kv.Value, &rec)
		if rec.Key == nil || !bytes.Equal(rec.Cert, pemOf(leafOf(t, c))) {
			t.Error("the new certificate was not stored")
		}
	})
}

func TestInternalWithoutCA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		t.Cleanup(st.Close)
		m, _ := startManager(t, Config{}, Deps{Store: st})
		m.Manage(context.Background(), []Want{{Host: "pad.example.org", Mode: client.TLSInternal}})
		synctest.Wait()
		if _, err := m.GetCertificate(hello("pad.example.org")); !errors.Is(err, ErrNoCA) {
			t.Fatalf("got %v, want ErrNoCA", err)
		}
	})
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Expired internal certificates of hosts no route wants are deleted; the
// others stay.
func TestInternalExpiredUnwantedCollected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := store.NewMemory()
		t.Cleanup(st.Close)
		ca := newCA(t)
		m, _ := startManager(t, Config{InternalLifetime: 2 * time.Hour}, Deps{Store: st, CA: ca})
		m.Manage(ctx, []Want{{Host: "old.example.org", Mode: client.TLSInternal}, {Host: "kept.example.org", Mode: client.TLSInternal}})
		synctest.Wait()
		m.Manage(ctx, []Want{{Host: "kept.example.org", Mode: client.TLSInternal}, {Host: "new.example.org", Mode: client.TLSInternal}})
		synctest.Wait()
		if _, err := st.Get(ctx, internalKey("old.example.org")); err != nil {
			t.Fatalf("unwanted but still valid: got %v, want it kept", err)
		}
		time.Sleep(4 * time.Hour) // old.example.org expires; the wanted ones are renewed
		synctest.Wait()
		m.poke()
		synctest.Wait()
		if _, err := st.Get(ctx, internalKey("old.example.org")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("expired and unwanted: got %v, want it deleted", err)
		}
		for _, host := range []string{"kept.example.org", "new.example.org"} {
			if _, err := st.Get(ctx, internalKey(host)); err != nil {
				t.Errorf("%s: %v", host, err)
			}
			if _, err := m.GetCertificate(hello(host)); err != nil {
				t.Errorf("%s: %v", host, err)
			}
		}
	})
}
