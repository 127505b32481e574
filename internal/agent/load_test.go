package agent

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const statFixture = `cpu  100 10 50 800 40 0 0 0 0 0
cpu0 50 5 25 400 20 0 0 0 0 0
cpu1 50 5 25 400 20 0 0 0 0 0
intr 12345
ctxt 999
`

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    cpuTimes
		wantErr bool
	}{
		{"two cpus", statFixture, cpuTimes{busy: 160, total: 1000, ncpu: 2}, false},
		{"old kernel, 4 fields", "cpu 1 2 3 4\ncpu0 1 2 3 4\n", cpuTimes{busy: 6, total: 10, ncpu: 1}, false},
		{"with steal", "cpu 10 0 10 70 5 1 1 3 7 0\ncpu0 0\n", cpuTimes{busy: 25, total: 100, ncpu: 1}, false},
		{"no cpu line", "intr 1\n", cpuTimes{}, true},
		{"garbage", "cpu a b c d\n", cpuTimes{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCPUInUse(t *testing.T) {
	prev := cpuTimes{busy: 160, total: 1000, ncpu: 2}
	tests := []struct {
		name string
		cur  cpuTimes
		want float64
	}{
		{"half of two cores", cpuTimes{busy: 260, total: 1200, ncpu: 2}, 1},
		{"idle", cpuTimes{busy: 160, total: 1200, ncpu: 2}, 0},
		{"all busy", cpuTimes{busy: 360, total: 1200, ncpu: 2}, 2},
		{"no time passed", prev, 0},
		{"counter reset", cpuTimes{busy: 10, total: 20, ncpu: 2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuInUse(prev, tt.cur); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		name             string
		in               string
		total, available int64
		wantErr          bool
	}{
		{"debian 12", "MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    6000000 kB\nBuffers: 1 kB\n", 8000000 * 1024, 6000000 * 1024, false},
		{"no MemAvailable (kernel < 3.14)", "MemTotal: 100 kB\nMemFree: 50 kB\n", 0, 0, true},
		{"bad number", "MemTotal: x kB\nMemAvailable: 1 kB\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, avail, err := parseMeminfo(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if total != tt.total || avail != tt.available {
				t.Errorf("got %d/%d, want %d/%d", total, avail, tt.total, tt.available)
			}
		})
	}
}

func TestParseLoadavg(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"0.52 0.58 0.59 2/345 12345\n", 0.52, false},
		{"", 0, true},
		{"high 1 1", 0, true},
	}
	for _, tt := range tests {
		got, err := parseLoadavg(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseLoadavg(%q): got %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLoadSampler(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", statFixture)
	write("meminfo", "MemTotal: 1000 kB\nMemAvailable: 400 kB\n")
	write("loadavg", "1.25 1.00 0.50 1/100 42\n")
	s := newLoadSampler(dir)
	now := time.Unix(1000, 0)
	l, err := s.sample(now)
	if err != nil {
		t.Fatal(err)
	}
	if l.CPU != 0 || l.Memory != 600*1024 || l.Load1 != 1.25 || !l.Updated.Equal(now) {
		t.Fatalf("first sample: got %+v", l)
	}
	write("stat", "cpu 200 10 50 900 40 0 0 0\ncpu0 0\ncpu1 0\n")
	l, err = s.sample(now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if l.CPU != 1 { // 100 busy of 200 ticks on 2 cpus
		t.Fatalf("second sample cpu: got %v, want 1", l.CPU)
	}
	os.Remove(filepath.Join(dir, "loadavg"))
	l, err = s.sample(now.Add(2 * time.Second))
	if err == nil || l.Memory != 600*1024 {
		t.Fatalf("missing loadavg: got %+v, %v; want the rest and an error", l, err)
	}
}
