package daemon

import (
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/store"
)

func TestCanRemove(t *testing.T) {
	mgr := func(name string, healthy bool) client.Manager {
		return client.Manager{Name: name, Healthy: healthy, StoreMember: true}
	}
	three := []client.Manager{mgr("a", true), mgr("b", true), mgr("c", true)}
	four := append(three[:3:3], mgr("d", true))
	for _, tc := range []struct {
		name   string
		ms     []client.Manager
		rm     string
		force  bool
		errHas string // "" = allowed
	}{
		{"last one", []client.Manager{mgr("a", true)}, "a", true, "last manager"},
		{"unknown", three, "x", false, "no manager"},
		{"three to two", three, "c", false, "leaves 2 managers"},
		{"three to two, forced", three, "c", true, ""},
		{"four to three", four, "d", false, ""},
		{"the dead one of four", []client.Manager{mgr("a", true), mgr("b", true), mgr("c", true), mgr("d", false)}, "d", false, ""},
		{"no quorum left", []client.Manager{mgr("a", true), mgr("b", false), mgr("c", false), mgr("d", true)}, "a", false, "fewer than a quorum"},
		{"no quorum left, forced", []client.Manager{mgr("a", true), mgr("b", false), mgr("c", false), mgr("d", true)}, "a", true, ""},
		{"a learner (joining, not voting)", append(three[:3:3], client.Manager{Name: "d", StoreMember: true, StoreLearner: true}), "d", false, ""},
		{"three voters and a learner to two", append(three[:3:3], client.Manager{Name: "d", Healthy: true, StoreMember: true, StoreLearner: true}), "c", false, "leaves 2 managers"},
		{"a member not started, by its peer URL", append(three[:3:3], client.Manager{Name: "(starting)", PeerURL: "https://10.0.0.4:7480", StoreMember: true, StoreLearner: true}), "https://10.0.0.4:7480", false, ""},
		{"a voter by its peer URL", []client.Manager{mgr("a", true), mgr("b", true), {Name: "c", PeerURL: "https://10.0.0.3:7480", Healthy: true, StoreMember: true}}, "https://10.0.0.3:7480", true, "no manager"},
		{"not a member", []client.Manager{mgr("a", true), mgr("b", true), {Name: "c", Healthy: true}}, "c", false, "no manager"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := canRemove(tc.ms, tc.rm, tc.force)
			switch {
			case tc.errHas == "" && err != nil:
				t.Errorf("got %v, want allowed", err)
			case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
				t.Errorf("got %v, want an error saying %q", err, tc.errHas)
			}
		})
	}
}

func TestPeerAddr(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "127.0.0.1:7480"},
		{Config{StorePeerAddr: "127.0.0.1:9480"}, "127.0.0.1:9480"},
		{Config{AdvertiseAddr: "10.0.0.5"}, "10.0.0.5:7480"},
		{Config{AdvertiseAddr: "10.0.0.5", StorePeerAddr: "127.0.0.1:9480"}, "10.0.0.5:9480"},
		{Config{AdvertiseAddr: "10.0.0.5", StorePeerAddr: "10.0.0.6:9480"}, "10.0.0.6:9480"},
	} {
		if got := peerAddr(tc.cfg); got != tc.want {
			t.Errorf("peerAddr(adv %q, peer %q) = %q, want %q", tc.cfg.AdvertiseAddr, tc.cfg.StorePeerAddr, got, tc.want)
		}
	}
}

func TestJoinCheck(t *testing.T) {
	const peer = "https://10.0.0.4:7480"
	voter := func(name, url string) store.Member { return store.Member{Name: name, PeerURLs: []string{url}} }
	a, b := voter("a", "https://10.0.0.1:7480"), voter("b", "https://10.0.0.2:7480")
	for _, tc := range []struct {
		name      string
		ms        []store.Member
		wantStale string
		errHas    string // in the refusal; "": allowed
	}{
		{"first join", []store.Member{a}, "", ""},
		{"a voter at its peer URL", []store.Member{a, voter("d", peer)}, "", "remove it first"},
		{"a voter with its name", []store.Member{a, voter("d", "https://10.0.0.9:7480")}, "", "remove it first"},
		// The machine joins again: its earlier member never started (or
		// started as a learner, then its data dir was wiped).
		{"its own member, not started", []store.Member{{PeerURLs: []string{peer}, Learner: true}, a}, peer, ""},
		{"its own learner, started", []store.Member{a, {Name: "d", PeerURLs: []string{peer}, Learner: true}}, "d", ""},
		{"another manager's member, not started", []store.Member{{PeerURLs: []string{"https://10.0.0.3:7480"}, Learner: true}, a, b}, "",
			"another manager is joining (store member https://10.0.0.3:7480 has not started or caught up yet); retry when it has, or remove it with `ruche manager rm https://10.0.0.3:7480` (the leading manager removes it by itself if it has not started after 10m0s)"},
		{"another manager's learner", []store.Member{a, b, {Name: "c", PeerURLs: []string{"https://10.0.0.3:7480"}, Learner: true}}, "",
			"another manager is joining (store member c has not started or caught up yet); retry when it has, or remove it with `ruche manager rm c`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stale, err := joinCheck(tc.ms, "d", peer)
			if stale != tc.wantStale {
				t.Errorf("stale %q, want %q", stale, tc.wantStale)
			}
			switch {
			case tc.errHas == "" && err != nil:
				t.Errorf("got %v, want allowed", err)
			case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
				t.Errorf("got %v, want an error saying %q", err, tc.errHas)
			}
		})
	}
}
