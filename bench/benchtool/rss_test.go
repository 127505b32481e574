package main

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    int64
		wantErr error
	}{
		{name: "process", status: "Name:\truche\nVmPeak:\t  900 kB\nVmRSS:\t   61234 kB\nRssAnon:\t 50000 kB\n", want: 61234},
		{name: "kernel thread", status: "Name:\tkthreadd\nState:\tS (sleeping)\n", wantErr: errParse},
		{name: "odd unit", status: "VmRSS:\t12 MB\n", wantErr: errParse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmRSS(strings.NewReader(tt.status))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d KiB, want %d", got, tt.want)
			}
		})
	}
}

func TestReadRSSOfThisProcess(t *testing.T) {
	got, err := readRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 {
		t.Errorf("rss of the test process = %d KiB, want > 0", got)
	}
}
