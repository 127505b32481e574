package main

import (
	"os"
	"path/filepath"
	"testing"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The outputs under testdata were printed by the real tools on this
// machine (wrk 4.1.0, h2load 1.52.0, go test), except wrk-errors.txt whose
// socket-error line was added to a real non-2xx run.
func TestParseTools(t *testing.T) {
	tests := []struct {
		tool, file, label string
		want              string
	}{
		{"wrk", "wrk.txt", "peak/direct/1",
			"wrk\tpeak/direct/1\trps=31098.02\trequests=93619\tseconds=3.01\tp50=1.790\tp75=3.370\tp90=5.870\tp99=18.660\terrors=0"},
		{"wrk", "wrk-caddy.txt", "peak/caddy/1",
			"wrk\tpeak/caddy/1\trps=3642.00\trequests=11022\tseconds=3.03\tp50=15.470\tp75=29.460\tp90=48.180\tp99=91.780\terrors=0"},
		{"wrk", "wrk-errors.txt", "x",
			"wrk\tx\trps=38119.13\trequests=77236\tseconds=2.03\tp50=1.370\tp75=2.380\tp90=3.970\tp99=11.110\terr_connect=0\terr_read=3\terr_write=1\terr_timeout=2\tnon2xx=77236\terrors=77242"},
		{"h2load", "h2load.txt", "h2/ruche",
			"h2load\th2/ruche\trps=5484.67\tseconds=17.01\ttotal=82270\tstarted=82270\tdone=82270\tsucceeded=82270\tfailed=0\terrored=0\ttimeout=0\ts2xx=82160\ts3xx=0\ts4xx=0\ts5xx=0\tproto=h2\tmean=57.350\tmax=711.620"},
		{"h2load", "h2load-h1.txt", "tls1/ruche",
			"h2load\ttls1/ruche\trps=13389.67\tseconds=17\ttotal=200845\tstarted=200845\tdone=200845\tsucceeded=200845\tfailed=0\terrored=0\ttimeout=0\ts2xx=200845\ts3xx=0\ts4xx=0\ts5xx=0\tproto=http/1.1\tmean=4.780\tmax=58.280"},
		{"gobench", "gobench.txt", "BenchmarkProxyHotPath",
			"gobench\tBenchmarkProxyHotPath\titerations=2000\tns_op=13307\tb_op=670\tallocs_op=6"},
		{"gobench", "gobench.txt", "BenchmarkProxyEndToEnd",
			"gobench\tBenchmarkProxyEndToEnd\titerations=2000\tns_op=72378\tb_op=5998\tallocs_op=70"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.label, func(t *testing.T) {
			var r *result
			var err error
			in := readTestdata(t, tt.file)
			switch tt.tool {
			case "wrk":
				r, err = parseWrk(tt.label, in)
			case "h2load":
				r, err = parseH2load(tt.label, in)
			case "gobench":
				r, err = parseGoBench(tt.label, in)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.String(); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestParseToolsRejects(t *testing.T) {
	tests := []struct {
		name string
		fn   func() (*result, error)
	}{
		{"wrk that could not connect", func() (*result, error) {
			return parseWrk("x", "unable to connect to 127.0.0.1:1 Connection refused\n")
		}},
		{"h2load that did not finish", func() (*result, error) { return parseH2load("x", "connect error\n") }},
		{"benchmark not in the output", func() (*result, error) {
			return parseGoBench("BenchmarkNope", readTestdata(t, "gobench.txt"))
		}},
		{"benchmark without -benchmem", func() (*result, error) {
			return parseGoBench("BenchmarkProxyHotPath", "BenchmarkProxyHotPath-2   \t 100\t 13307 ns/op\n")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := tt.fn(); err == nil {
				t.Errorf("got %v, want an error", r)
			}
		})
	}
}
