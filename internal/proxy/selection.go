package proxy

// tried remembers the upstreams an attempt loop already used, so a retry
// goes to another one when it can.
type tried struct {
	n   int
	ups [maxAttempts]*upstream
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

// pick chooses an upstream of r by the power of two choices: two
// distinct random candidates, the one with fewer requests in flight wins
// (the first drawn on a tie). Candidates are the available upstreams not
// yet tried, or, if there are none, the available ones. It returns nil
// when no upstream is available. randN(n) returns a number in [0, n).
func pick(ups []*upstream, now int64, tr *tried, randN func(int) int) *upstream {
	n := 0
	for _, u := range ups {
		if u.available(now) && !tr.has(u) {
			n++
		}
	}
	skipTried := n > 0
	if !skipTried {
		for _, u := range ups {
			if u.available(now) {
				n++
			}
		}
	}
	switch n {
	case 0:
		return nil
	case 1:
		return nth(ups, 0, now, tr, skipTried)
	}
	i := randN(n)
	j := randN(n - 1)
	if j >= i {
		j++
	}
	a := nth(ups, i, now, tr, skipTried)
	b := nth(ups, j, now, tr, skipTried)
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}

// nth returns the i-th candidate of ups.
func nth(ups []*upstream, i int, now int64, tr *tried, skipTried bool) *upstream {
	for _, u := range ups {
		if !u.available(now) || (skipTried && tr.has(u)) {
			continue
		}
		if i == 0 {
			return u
		}
		i--
	}
	return nil
}
