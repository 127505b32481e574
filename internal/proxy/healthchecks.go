package proxy

import (
	"bufio"
	"context"
	"fmt"
	"sync"
	"time"
)

// Active health checks: every HealthInterval, each upstream of the table
// is probed (a TCP connect, or an HTTP GET of HealthPath answered with a
// status below 500: HealthPath is the same for every service, and one
// that answers 404 for it is up all the same). A failed check takes the
// upstream out of selection until a check succeeds, unless every
// upstream of a route fails (see pick); a successful check also ends an
// ejection that came from a dial error (it connects again). Ejections for
// 5xx answers run their course: a TCP check cannot tell that the service
// is healthy.
const maxParallelChecks = 16

// healthLoop runs the checks until ctx ends.
func (p *Proxy) healthLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.checkAll(ctx)
		}
	}
}

// checkAll checks every upstream of the current table once.
func (p *Proxy) checkAll(ctx context.Context) {
	var ups []*upstream
	for _, us := range p.table.Load().byID {
		ups = append(ups, us...)
	}
	sem := make(chan struct{}, maxParallelChecks)
	var wg sync.WaitGroup
	changed := false
	var mu sync.Mutex
	for _, u := range ups {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := p.check(u)
			if ctx.Err() != nil {
				return
			}
			if p.recordCheck(u, err) {
				mu.Lock()
				changed = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if changed {
		p.broadcast()
	}
}

// recordCheck applies a check result and reports whether u became
// available.
func (p *Proxy) recordCheck(u *upstream, err error) bool {
	if err != nil {
		if !u.down.Swap(true) {
			p.log.Info("upstream failed its health check", "upstream", u.id, "addr", u.addr, "err", err)
		}
		return false
	}
	wasDown := u.down.Swap(false)
	if wasDown {
		p.log.Info("upstream passed its health check", "upstream", u.id, "addr", u.addr)
	}
	if u.dialEjected.Load() && u.ejectedUntil.Load() > time.Now().UnixNano() {
		u.ejectedUntil.Store(0)
		u.ejections.Store(0)
		return true
	}
	return wasDown
}

func (p *Proxy) checkTimeout() time.Duration {
	return min(p.cfg.HealthInterval, 5*time.Second)
}

// defaultCheck probes u over the network.
func (p *Proxy) defaultCheck(u *upstream) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.checkTimeout())
	defer cancel()
	nc, err := p.dialNet(ctx, "tcp", u.addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	if p.cfg.HealthPath == "" {
		return nil
	}
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	host := u.checkHost
	if host == "" {
		host = u.addr
	}
	if _, err := fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ruche-health-check\r\nConnection: close\r\n\r\n", p.cfg.HealthPath, host); err != nil {
		return err
	}
	var h respHead
	if err := readHead(bufio.NewReader(nc), &h); err != nil {
		return err
	}
	if h.status >= 500 {
		return fmt.Errorf("proxy: health check status %d", h.status)
	}
	return nil
}
