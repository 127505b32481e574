package main

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rssSampler samples this process's VmRSS every 250 ms.
type rssSampler struct {
	stopCh chan struct{}
	wg     sync.WaitGroup
	peak   int64
}

func startRSS(ctx context.Context) *rssSampler {
	r := &rssSampler{stopCh: make(chan struct{})}
	r.wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if v := status("VmRSS:"); v > r.peak {
				r.peak = v
			}
			select {
			case <-t.C:
			case <-r.stopCh:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	return r
}

// stop returns the largest sample, VmHWM and the current VmRSS, in bytes.
func (r *rssSampler) stop() (peak, hwm, now int64) {
	close(r.stopCh)
	r.wg.Wait()
	return r.peak, status("VmHWM:"), status("VmRSS:")
}

// status reads a "kB" field of /proc/self/status, in bytes.
func status(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
