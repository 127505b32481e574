package apiserver

import (
	"fmt"
	"net/http"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"
)

// Profiles of the daemon that answers, for an operator chasing CPU or
// memory (`ruche debug profile`): GET /v1/debug/profile/{name}, admin
// tokens only, in pprof's format for `go tool pprof`.
const (
	defaultCPUProfile = 30 * time.Second
	maxCPUProfile     = 120 * time.Second
)

// profileNames are the named profiles served besides cpu.
var profileNames = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

// getProfile is GET /v1/debug/profile/{name}: cpu, sampled for ?seconds
// (default 30, at most 120; one at a time per process), or one of the
// runtime's named profiles.
func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r, "a profile shows the daemon's insides: it needs an admin token"); err != nil {
		return err
	}
	name := r.PathValue("name")
	if name != "cpu" {
		p := pprof.Lookup(name)
		if p == nil || !slices.Contains(profileNames, name) {
			return notFound(fmt.Sprintf("no profile %q: cpu, or one of %v", name, profileNames))
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		return p.WriteTo(w, 0)
	}
	d := defaultCPUProfile
	if v := r.URL.Query().Get("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || time.Duration(n)*time.Second > maxCPUProfile {
			return invalid(fmt.Sprintf("seconds=%q: a whole number from 1 to %d", v, int(maxCPUProfile.Seconds())))
		}
		d = time.Duration(n) * time.Second
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := pprof.StartCPUProfile(w); err != nil {
		w.Header().Del("Content-Type")
		return conflict("a CPU profile is being taken already: " + err.Error())
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
	}
	pprof.StopCPUProfile()
	s.log.Info("CPU profile taken", "seconds", d.Seconds())
	return nil
}
