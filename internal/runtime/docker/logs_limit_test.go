package docker

import (
	"reflect"
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestLogLimitsCheck(t *testing.T) {
	for _, tc := range []struct {
		l  LogLimits
		ok bool
	}{
		{LogLimits{}, true},
		{LogLimits{MaxSize: "10m", MaxFiles: 3}, true},
		{LogLimits{MaxSize: "1g", MaxFiles: 1}, true},
		{LogLimits{MaxSize: "10x", MaxFiles: 3}, false},
		{LogLimits{MaxSize: "0", MaxFiles: 3}, false},
		{LogLimits{MaxSize: "-1m", MaxFiles: 3}, false},
		{LogLimits{MaxSize: "10m", MaxFiles: 0}, false},
	} {
		if err := tc.l.Check(); (err == nil) != tc.ok {
			t.Errorf("%+v: error %v, want ok=%v", tc.l, err, tc.ok)
		}
	}
}

func TestLogLimitsConfig(t *testing.T) {
	l := LogLimits{MaxSize: "10m", MaxFiles: 3}
	want := container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}}
	if got := l.config("json-file"); !reflect.DeepEqual(got, want) {
		t.Errorf("json-file: got %+v, want %+v", got, want)
	}
	want.Type = "local"
	if got := l.config("local"); !reflect.DeepEqual(got, want) {
		t.Errorf("local: got %+v, want %+v", got, want)
	}
	for _, driver := range []string{"journald", "syslog", "fluentd", "none"} {
		if got := l.config(driver); !reflect.DeepEqual(got, container.LogConfig{}) {
			t.Errorf("%s: got %+v, want the engine's setting (zero)", driver, got)
		}
	}
	if got := (LogLimits{}).config("json-file"); !reflect.DeepEqual(got, container.LogConfig{}) {
		t.Errorf("no limits: got %+v, want zero", got)
	}
}
