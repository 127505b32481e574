package compose

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/ruche-platform/ruche/client"
)

func TestParseRouteShorthand(t *testing.T) {
	tests := []struct {
		in        string
		want      client.RouteSpec
		needsPort bool
		err       string
	}{
		{in: "pad.example.org", want: client.RouteSpec{Host: "pad.example.org"}, needsPort: true},
		{in: "Pad.Example.org:9001", want: client.RouteSpec{Host: "pad.example.org", Port: 9001}},
		{in: "pad.example.org/api", want: client.RouteSpec{Host: "pad.example.org", PathPrefix: "/api"}, needsPort: true},
		{in: "pad.example.org/api:9001", want: client.RouteSpec{Host: "pad.example.org", PathPrefix: "/api", Port: 9001}},
		{in: "pad.example.org/:9001", want: client.RouteSpec{Host: "pad.example.org", Port: 9001}},
		{in: "pad.example.org/api/:9001", want: client.RouteSpec{Host: "pad.example.org", PathPrefix: "/api", Port: 9001}},
		{in: "pad.example.org/api:v2", want: client.RouteSpec{Host: "pad.example.org", PathPrefix: "/api:v2"}, needsPort: true},
		{in: "pad.example.org/api:v2:80", want: client.RouteSpec{Host: "pad.example.org", PathPrefix: "/api:v2", Port: 80}},
		{in: "  *.pads.example.org:80   tls=internal ", want: client.RouteSpec{Host: "*.pads.example.org", Port: 80, TLS: client.TLSInternal}},
		{in: "pad.example.org tls=acme", want: client.RouteSpec{Host: "pad.example.org", TLS: client.TLSACME}, needsPort: true},
		{in: "pad.example.org tls=none", want: client.RouteSpec{Host: "pad.example.org", TLS: client.TLSNone}, needsPort: true},
		{in: "", err: "empty route"},
		{in: "pad.example.org:0", err: "port 0 is not between 1 and 65535"},
		{in: "pad.example.org:65536", err: "port 65536 is not between 1 and 65535"},
		{in: "pad.example.org:9001/api", err: "the port comes last"},
		{in: "pad.example.org:http", err: "the port comes last"},
		{in: "/api:80", err: "has no host"},
		{in: "http://pad.example.org", err: "without a scheme"},
		{in: "pad.example.org tls=files", err: "certificate files are given in x-ruche.routes"},
		{in: "pad.example.org tls=yes", err: "tls=yes is not a TLS mode"},
		{in: "pad.example.org tls=acme tls=none", err: `"tls=none": after the route comes only`},
		{in: "pad.example.org other.example.org", err: `"other.example.org": after the route comes only`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRouteShorthand(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRouteShorthand: %v", err)
			}
			if !reflect.DeepEqual(got.spec, tt.want) || got.needsPort != tt.needsPort {
				t.Errorf("got %+v (needs port %v), want %+v (needs port %v)", got.spec, got.needsPort, tt.want, tt.needsPort)
			}
		})
	}
}

func TestContainerPorts(t *testing.T) {
	tests := []struct {
		name   string
		ports  []client.PortSpec
		expose types.StringOrNumberList
		want   []uint16
	}{
		{"none", nil, nil, nil},
		{"ports and expose, each once", []client.PortSpec{{Target: 80}, {Target: 443, Protocol: "tcp"}}, []string{"80", "9000/tcp"}, []uint16{80, 443, 9000}},
		{"udp is not HTTP", []client.PortSpec{{Target: 53, Protocol: "udp"}}, []string{"5353/udp", "8080"}, []uint16{8080}},
		{"expose ranges", nil, []string{"8000-8002"}, []uint16{8000, 8001, 8002}},
		{"nonsense is skipped", nil, []string{"x", "9-1", "1-99999"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := containerPorts(tt.ports, tt.expose); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadBytesRoutes(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		env  map[string]string
		want []client.RouteSpec // of service web
		errs []string
	}{
		{
			name: "x-ruche values are interpolated",
			doc: `name: shop
services:
  web:
    image: nginx
    x-ruche:
      routes:
        - host: ${HOST}
          path: ${PREFIX:-/}
          port: ${PORT}
          tls: ${TLS:-internal}
        - ${HOST}/short:${PORT}
        - host: ${HOST}
          path: /empty
          port: 80
          tls: ${EMPTY}
`,
			env: map[string]string{"HOST": "shop.example.org", "PORT": "8080", "EMPTY": ""},
			want: []client.RouteSpec{
				{Host: "shop.example.org", Port: 8080, TLS: client.TLSInternal, Source: "x-ruche.routes[0]"},
				{Host: "shop.example.org", PathPrefix: "/short", Port: 8080, Source: "x-ruche.routes[1]"},
				{Host: "shop.example.org", PathPrefix: "/empty", Port: 80, Source: "x-ruche.routes[2]"},
			},
		},
		{
			name: "certificate files are refused: they are the client's",
			doc: `name: shop
services:
  web:
    image: nginx
    x-ruche:
      routes:
        - host: shop.example.org
          port: 80
          tls:
            cert: /etc/ssl/shop.pem
            key: shop.key
`,
			errs: []string{
				"posted.yml:10: services.web.x-ruche.routes[0].tls.cert: " + needsFilesReason,
				"posted.yml:11: services.web.x-ruche.routes[0].tls.key: " + needsFilesReason,
			},
		},
		{
			name: "a label route problem names the label in list syntax too",
			doc: `name: shop
services:
  web:
    image: nginx
    labels:
      - com.example.team=shop
      - ruche.route=shop.example.org
      - traefik.http.routers.web.rule=Host(` + "`a.example.org`" + `) && Path(` + "`/x`" + `)
`,
			errs: []string{
				"posted.yml:7: services.web.labels.ruche.route: route shop.example.org needs a port: the service declares no container port (in ports: or expose:) to take; write it last, as in pad.example.org/api:9001",
				"posted.yml:8: services.web.labels.traefik.http.routers.web.rule: Path is not supported: ruche routes by Host and PathPrefix (" + matcherHints["path"] + ")",
			},
		},
		{
			name: "a Validate problem of a route points at the key that wrote it",
			doc: `name: shop
services:
  web:
    image: nginx
    expose: [80]
    labels:
      traefik.http.routers.web.rule: Host(` + "`bad_host.example.org`" + `)
      traefik.http.routers.web.tls: "true"
    x-ruche:
      routes:
        - host: "*.example.org"
          path: x
        - host: ok.example.org
          tls: none
  api:
    image: nginx
    labels:
      ruche.route: ok.example.org/api:80 tls=internal
`,
			errs: []string{
				`posted.yml:7: services.web.labels.traefik.http.routers.web.rule: "bad_host.example.org" is not a valid DNS name`,
				`posted.yml:11: services.web.x-ruche.routes[0].host: wildcard host "*.example.org" needs tls internal, files or none: ACME certificates for wildcards need DNS-01, which ruche does not do yet`,
				`posted.yml:12: services.web.x-ruche.routes[0].path: "x" must start with /`,
				"posted.yml:14: services.web.x-ruche.routes[1].tls: host ok.example.org has tls none here but internal on service api: the routes of a host share its TLS",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := LoadBytes(context.Background(), "posted.yml", []byte(tt.doc), "", tt.env)
			if tt.errs != nil {
				if got := problemLines(t, err); !slices.Equal(got, tt.errs) {
					t.Errorf("problems:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.errs, "\n     "))
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadBytes: %v", err)
			}
			if got := spec.Services["web"].Routes; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("routes:\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestRouteLabelsLeaveTheTemplate checks that route labels are taken out
// of the container's labels: changing a route must not change the replica
// template, which would restart every replica.
func TestRouteLabelsLeaveTheTemplate(t *testing.T) {
	load := func(labels string) client.ServiceSpec {
		t.Helper()
		doc := "name: shop\nservices:\n  web:\n    image: nginx\n    expose: [80]\n    labels:\n" + labels
		spec, err := LoadBytes(context.Background(), "c.yml", []byte(doc), "", nil)
		if err != nil {
			t.Fatalf("LoadBytes: %v", err)
		}
		return spec.Services["web"]
	}
	a := load("      team: shop\n      ruche.route: a.example.org\n")
	b := load("      team: shop\n      ruche.route: b.example.org\n      traefik.http.routers.x.rule: Host(`c.example.org`)\n")
	if !bytes.Equal(a.Template(), b.Template()) {
		t.Errorf("templates differ:\n%s\n%s", a.Template(), b.Template())
	}
	if got, want := a.Labels, map[string]string{"team": "shop"}; !reflect.DeepEqual(got, want) {
		t.Errorf("labels: got %v, want %v", got, want)
	}
	if len(a.Routes) != 1 || len(b.Routes) != 2 {
		t.Errorf("routes: got %+v and %+v, want 1 and 2", a.Routes, b.Routes)
	}
}

// TestLoadRoutesOverride merges x-ruche.routes of two files: compose-go
// appends the lists, and a problem points at the list, the best that can
// be said of a merged item.
func TestLoadRoutesOverride(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yml":          "name: shop\nservices:\n  web:\n    image: nginx\n    expose: [80]\n    x-ruche:\n      routes:\n        - a.example.org\n",
		"compose.override.yml": "services:\n  web:\n    x-ruche:\n      routes:\n        - host: b.example.org\n          path: nope\n",
	})
	files := []string{filepath.Join(dir, "compose.yml"), filepath.Join(dir, "compose.override.yml")}
	_, err := Load(context.Background(), Options{Files: files, Env: map[string]string{}})
	want := []string{files[1] + `:4: services.web.x-ruche.routes: "nope" must start with /`}
	if got := problemLines(t, err); !slices.Equal(got, want) {
		t.Errorf("problems:\ngot  %q\nwant %q", got, want)
	}
}
