package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestAddrs(t *testing.T) {
	const routes = `[
 {"host":"bench.ruche.test","project":"bench-ing","service":"web","port":8080,"tls":"none","replicas":[
  {"name":"web.1","node":"n","addr":"192.168.160.2:8080","state":"running","ready":true},
  {"name":"web.2","node":"n","addr":"192.168.160.3:8080","state":"starting","ready":false},
  {"name":"web.3","node":"n","state":"running","ready":true}]},
 {"host":"other.ruche.test","project":"x","service":"web","port":80,"tls":"none","replicas":[
  {"name":"web.1","node":"n","addr":"10.0.0.9:80","state":"running","ready":true}]}]`
	tests := []struct {
		host    string
		want    string
		wantErr bool
	}{
		{"bench.ruche.test", "192.168.160.2:8080\n", false},
		{"other.ruche.test", "10.0.0.9:80\n", false},
		{"nobody.ruche.test", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			var out bytes.Buffer
			err := addrsCmd([]string{"-host", tt.host}, strings.NewReader(routes), &out)
			if (err != nil) != tt.wantErr || out.String() != tt.want {
				t.Errorf("got %q, %v; want %q, error %v", out.String(), err, tt.want, tt.wantErr)
			}
		})
	}
}
