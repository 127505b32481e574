package proxy

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// limiter is a token bucket per client address: rate tokens per second,
// at most burst. IPv6 clients are limited per /64, since one host
// usually holds a whole /64.
type limiter struct {
	rate, burst float64
	shards      [32]limiterShard
}

type limiterShard struct {
	mu sync.Mutex
	m  map[netip.Addr]bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix ns of the last refill
}

func newLimiter(rate float64, burst int) *limiter {
	if rate <= 0 {
		return nil
	}
	b := float64(burst)
	if b < 1 {
		b = math.Max(1, math.Ceil(rate))
	}
	l := &limiter{rate: rate, burst: b}
	for i := range l.shards {
		l.shards[i].m = map[netip.Addr]bucket{}
	}
	return l
}

func limitKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func (l *limiter) shard(a netip.Addr) *limiterShard {
	b := a.As16()
	var h byte
	for _, x := range b {
		h = h*31 + x
	}
	return &l.shards[int(h)%len(l.shards)]
}

// allow takes a token for a at now; if there is none it returns how long
// until there is one.
func (l *limiter) allow(a netip.Addr, now time.Time) (bool, time.Duration) {
	a = limitKey(a)
	s := l.shard(a)
	t := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[a]
	if !ok {
		b = bucket{tokens: l.burst, last: t}
	} else if t > b.last {
		b.tokens = math.Min(l.burst, b.tokens+float64(t-b.last)/1e9*l.rate)
		b.last = t
	}
	if b.tokens >= 1 {
		b.tokens--
		s.m[a] = b
		return true, 0
	}
	s.m[a] = b
	wait := time.Duration((1 - b.tokens) / l.rate * 1e9)
	return false, wait
}

// sweep forgets the buckets that have refilled completely by now: they
// are the same as no bucket.
func (l *limiter) sweep(now time.Time) {
	t := now.UnixNano()
	full := int64(l.burst / l.rate * 1e9)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for a, b := range s.m {
			if t-b.last >= full {
				delete(s.m, a)
			}
		}
		s.mu.Unlock()
	}
}

// size is the number of buckets held.
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		l.shards[i].mu.Lock()
		n += len(l.shards[i].m)
		l.shards[i].mu.Unlock()
	}
	return n
}
