package proxy

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

func TestLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(2, 3) // 2/s, burst 3
		a := netip.MustParseAddr("192.0.2.1")
		b := netip.MustParseAddr("192.0.2.2")
		for i := range 3 {
			if ok, _ := l.allow(a, time.Now()); !ok {
				t.Fatalf("request %d of the burst refused", i)
			}
		}
		ok, wait := l.allow(a, time.Now())
		if ok || wait != 500*time.Millisecond {
			t.Fatalf("past the burst: got ok=%v wait=%v, want refused, 500ms", ok, wait)
		}
		if ok, _ := l.allow(b, time.Now()); !ok {
			t.Fatal("another client is limited too")
		}
		time.Sleep(500 * time.Millisecond)
		if ok, _ := l.allow(a, time.Now()); !ok {
			t.Fatal("no token after 1/rate")
		}
		if ok, _ := l.allow(a, time.Now()); ok {
			t.Fatal("two tokens after 1/rate")
		}
		time.Sleep(10 * time.Second)
		for i := range 3 {
			if ok, _ := l.allow(a, time.Now()); !ok {
				t.Fatalf("refill capped wrong: request %d refused", i)
			}
		}
		if ok, _ := l.allow(a, time.Now()); ok {
			t.Fatal("refill beyond the burst")
		}

		// Buckets that are full again are forgotten.
		if n := l.size(); n != 2 {
			t.Fatalf("buckets: got %d, want 2", n)
		}
		time.Sleep(time.Second)
		l.sweep(time.Now())
		if n := l.size(); n != 1 {
			t.Errorf("after b refilled: got %d buckets, want 1", n)
		}
		time.Sleep(2 * time.Second)
		l.sweep(time.Now())
		if n := l.size(); n != 0 {
			t.Errorf("after both refilled: got %d buckets, want 0", n)
		}
	})
}

func TestLimiterIPv6Per64(t *testing.T) {
	l := newLimiter(1, 1)
	now := time.Now()
	if ok, _ := l.allow(netip.MustParseAddr("2001:db8:1:2::1"), now); !ok {
		t.Fatal("first refused")
	}
	if ok, _ := l.allow(netip.MustParseAddr("2001:db8:1:2:ffff::9"), now); ok {
		t.Error("same /64 not limited together")
	}
	if ok, _ := l.allow(netip.MustParseAddr("2001:db8:1:3::1"), now); !ok {
		t.Error("another /64 limited")
	}
}

func TestRateLimit429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestProxy(t, Config{RateLimit: 0.5, RateBurst: 2})
		get := func(remote string) *responseRecorder {
			r := httpRequest("GET", "http://nowhere.test/")
			r.RemoteAddr = remote
			w := newRecorder()
			p.ServeHTTP(w, r)
			return w
		}
		for i := range 2 {
			if w := get("192.0.2.1:1"); w.Code != 404 {
				t.Fatalf("request %d: got %d, want 404 (not limited)", i, w.Code)
			}
		}
		w := get("192.0.2.1:2")
		if w.Code != 429 {
			t.Fatalf("past the burst: got %d, want 429", w.Code)
		}
		if got := w.Header().Get("Retry-After"); got != "2" {
			t.Errorf("Retry-After: got %q, want 2", got)
		}
		if w := get("192.0.2.9:1"); w.Code != 404 {
			t.Errorf("other client: got %d, want 404", w.Code)
		}
		time.Sleep(2 * time.Second)
		if w := get("192.0.2.1:3"); w.Code != 404 {
			t.Errorf("after Retry-After: got %d, want 404", w.Code)
		}
	})
}
