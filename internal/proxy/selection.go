package proxy

// tried remembers the upstreams an attempt loop already used, so a retry
// goes to another one when it can.
type tried struct {
	n   int
	ups [maxAttempts + maxDials]*upstream
}

func (t *tried) add(u *upstream) {
	if t.n < len(t.ups) {
		t.ups[t.n] = u
		t.n++
	}
}

func (t *tried) has(u *upstream) bool {
	for _, x := range t.ups[:t.n] {
		if x == u {
			return true
		}
	}
	return false
}

// Candidate sets, from the narrowest.
const (
	untriedAvailable = iota // available and not tried by this request
	available               // available
	notEjected              // not ejected, even if its active checks fail
)

func isCandidate(u *upstream, set int, now int64, tr *tried) bool {
	switch set {
	case untriedAvailable:
		return u.available(now) && !tr.has(u)
	case available:
		return u.available(now)
	}
	return u.ejectedUntil.Load() <= now
}

// pick chooses an upstream of r by the power of two choices: two
// distinct random candidates, the one with fewer requests in flight wins
// (the first drawn on a tie). The candidates are the available upstreams
// not yet tried; if there are none, the available ones; if there are
// none either, those only active health checks call down (panic mode:
// when checks fail everywhere, the replicas' own readiness, which put
// them in the table, is trusted over a check that may be wrong). It
// returns nil when nothing qualifies. randN(n) returns a number in [0, n).
func pick(ups []*upstream, now int64, tr *tried, randN func(int) int) *upstream {
	for set := untriedAvailable; set <= notEjected; set++ {
		n := 0
		for _, u := range ups {
			if isCandidate(u, set, now, tr) {
				n++
			}
		}
		switch n {
		case 0:
			continue
		case 1:
			return nth(ups, 0, set, now, tr)
		}
		i := randN(n)
		j := randN(n - 1)
		if j >= i {
			j++
		}
		a := nth(ups, i, set, now, tr)
		b := nth(ups, j, set, now, tr)
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	}
	return nil
}

// canPick reports whether pick would find an upstream in ups.
func canPick(ups []*upstream, now int64) bool {
	for _, u := range ups {
		if u.ejectedUntil.Load() <= now {
			return true
		}
	}
	return false
}

// nth returns the i-th candidate of ups.
func nth(ups []*upstream, i, set int, now int64, tr *tried) *upstream {
	for _, u := range ups {
		if !isCandidate(u, set, now, tr) {
			continue
		}
		if i == 0 {
			return u
		}
		i--
	}
	return nil
}
