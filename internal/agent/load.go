package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ruche-platform/ruche/client"
)

// The node's live load, read from /proc for the heartbeats.

// cpuTimes is the first line of /proc/stat, in clock ticks, and the number
// of CPUs it counts.
type cpuTimes struct {
	busy, total uint64
	ncpu        int
}

// parseStat reads /proc/stat: "cpu user nice system idle iowait irq
// softirq steal guest guest_nice" then one "cpuN" line per CPU. Busy is
// everything but idle and iowait; guest time is already in user.
func parseStat(s string) (cpuTimes, error) {
	var t cpuTimes
	found := false
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			t.ncpu++
			continue
		}
		if len(f) < 5 {
			return t, fmt.Errorf("/proc/stat: short cpu line %q", strings.TrimSpace(line))
		}
		for i, v := range f[1:min(len(f), 9)] { // user .. steal
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return t, fmt.Errorf("/proc/stat: %w", err)
			}
			t.total += n
			if i != 3 && i != 4 { // idle, iowait
				t.busy += n
			}
		}
		found = true
	}
	if !found {
		return t, errors.New("/proc/stat: no cpu line")
	}
	return t, nil
}

// cpuInUse is the number of cores busy between two samples.
func cpuInUse(prev, cur cpuTimes) float64 {
	if cur.total <= prev.total || cur.busy < prev.busy {
		return 0
	}
	return float64(cur.busy-prev.busy) / float64(cur.total-prev.total) * float64(max(cur.ncpu, 1))
}

// parseMeminfo returns MemTotal and MemAvailable in bytes.
func parseMeminfo(s string) (total, avail int64, err error) {
	var haveTotal, haveAvail bool
	for line := range strings.Lines(s) {
		key, rest, ok := strings.Cut(line, ":")
		if !ok || (key != "MemTotal" && key != "MemAvailable") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, 0, fmt.Errorf("/proc/meminfo: empty %s", key)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/meminfo: %s: %w", key, err)
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		if key == "MemTotal" {
			total, haveTotal = n, true
		} else {
			avail, haveAvail = n, true
		}
	}
	if !haveTotal || !haveAvail {
		return 0, 0, errors.New("/proc/meminfo: MemTotal or MemAvailable missing")
	}
	return total, avail, nil
}

// parseLoadavg returns the one-minute load average.
func parseLoadavg(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("/proc/loadavg: empty")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/loadavg: %w", err)
	}
	return v, nil
}

// loadSampler reads the node's load from a /proc directory. CPU in use
// needs two samples: the first reports 0.
type loadSampler struct {
	dir  string
	prev cpuTimes
	has  bool
}

func newLoadSampler(dir string) *loadSampler {
	if dir == "" {
		dir = "/proc"
	}
	return &loadSampler{dir: dir}
}

// sample reads what it can; a part that cannot be read stays 0 (and the
// error says which).
func (s *loadSampler) sample(now time.Time) (client.NodeLoad, error) {
	l := client.NodeLoad{Updated: now}
	var errs []error
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			errs = append(errs, err)
		}
		return string(b)
	}
	if t, err := parseStat(read("stat")); err != nil {
		errs = append(errs, err)
	} else {
		if s.has {
			l.CPU = cpuInUse(s.prev, t)
		}
		s.prev, s.has = t, true
	}
	if total, avail, err := parseMeminfo(read("meminfo")); err != nil {
		errs = append(errs, err)
	} else {
		l.Memory = total - avail
	}
	if v, err := parseLoadavg(read("loadavg")); err != nil {
		errs = append(errs, err)
	} else {
		l.Load1 = v
	}
	return l, errors.Join(errs...)
}
