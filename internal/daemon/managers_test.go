package daemon

import (
	"strings"
	"testing"

	"github.com/ruche-platform/ruche/client"
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
